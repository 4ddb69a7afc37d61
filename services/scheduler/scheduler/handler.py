"""SchedulerFunction: a scheduled (EventBridge) or manual invoke becomes one ExtractQueue message per entry."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from datalake.catalog import CatalogError, load_catalog
from datalake.contracts import RunStarted, ScheduleRequest
from datalake.events import publish_event
from datalake.observability import logger, metrics, tracer
from datalake.records import EventBridgeModel
from datalake.settings import SchedulerSettings, settings_for
from scheduler.adapters import claim_run_id, send_batch
from scheduler.domain import chunks, plan_run

settings = settings_for(SchedulerSettings)


class BadScheduleRequest(ValueError):
    """The manual invoke payload is malformed; nothing was sent."""


def _kind(value: Any) -> str:
    return "null" if value is None else {list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def parse_trigger(event: Any) -> tuple[ScheduleRequest | None, datetime, str]:
    """Tell a scheduled EventBridge event from a manual request.

    Returns
    -------
    (request or None for the schedule, trigger time, seed for the run id)

    Raises
    ------
    BadScheduleRequest
        When a manual payload does not validate, with every problem named.
    """
    if not isinstance(event, dict):
        raise BadScheduleRequest(
            f"invalid scheduler request, nothing sent: the payload must be a JSON object, got {_kind(event)}"
        )
    if event.get("source") == "aws.events" or "detail-type" in event:
        scheduled = EventBridgeModel.model_validate(event)
        return None, scheduled.time.astimezone(UTC), scheduled.id
    try:
        request = ScheduleRequest.model_validate(event)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise BadScheduleRequest(f"invalid scheduler request, nothing sent: {problems}") from exc
    return request, datetime.now(UTC), secrets.token_hex(8)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """Plan a run and enqueue it.

    Parameters
    ----------
    event: an EventBridge "Scheduled Event", or a manual payload
        ``{"trigger": "manual"|"backfill", "sources": [...], "datasets": [...], "start_year": .., "end_year": ..}``.

    Returns
    -------
    ``{"run_id", "trigger", "sent", "datasets"}``

    Raises
    ------
    BadScheduleRequest
        On a payload that is not an object, a malformed request, an unknown dataset, a window in the future, or a
        run id an earlier invoke already used; nothing is sent.
    """
    request, now, seed = parse_trigger(event)
    try:
        plan = plan_run(load_catalog(), request, now, seed, settings.daily_window_years)
        claim_run_id(settings.state_table, plan.run_id, seed, now)
    except (CatalogError, ValueError) as exc:  # RunIdTaken is a ValueError
        raise BadScheduleRequest(f"invalid scheduler request, nothing sent: {exc}") from exc
    logger.set_correlation_id(plan.run_id)
    logger.append_keys(run_id=plan.run_id)
    sent = sum(send_batch(settings.extract_queue_url, batch) for batch in chunks(plan.requests))
    publish_event(
        RunStarted(run_id=plan.run_id, trigger=plan.trigger, datasets=plan.datasets, counts={"requests": sent}),
        settings.pipeline_topic_arn,
    )
    metrics.add_metric(name="ExtractRequestsSent", unit=MetricUnit.Count, value=sent)
    logger.info("run scheduled", extra={"trigger": plan.trigger.value, "sent": sent})
    return {"run_id": plan.run_id, "trigger": plan.trigger.value, "sent": sent, "datasets": plan.datasets}
