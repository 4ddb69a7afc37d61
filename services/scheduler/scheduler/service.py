"""The scheduler's use case: a trigger becomes a planned, claimed and enqueued run, announced by ``run.started``.

The handler composes it from the adapters (``build_scheduler``); a test hands it fakes of the ports and a clock.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from datalake.catalog import Catalog, CatalogError, load_catalog
from datalake.contracts import ExtractRequest, PipelineEvent, RunStarted, ScheduleRequest, Trigger
from datalake.observability import logger
from datalake.records import EventBridgeModel
from scheduler.domain import chunks, plan_run


class BadScheduleRequest(ValueError):
    """The manual invoke payload is malformed; nothing was sent."""


def _kind(value: Any) -> str:
    return "null" if value is None else {list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def parse_trigger(event: Any, now: datetime, token: str) -> tuple[ScheduleRequest | None, datetime, str]:
    """Tell a scheduled EventBridge event from a manual request.

    Parameters
    ----------
    event: the invoke payload.
    now: the time a manual request is planned at (a scheduled event carries its own).
    token: a fresh random seed for a manual run id (a scheduled event's id is its seed).

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
    return request, now, token


@dataclass(frozen=True)
class Ports:
    """What the scheduler reads and writes; a test hands it fakes.

    catalog: the catalog to plan from.
    claim: claims a run id for one seed at a time, or raises ``scheduler.adapters.RunIdTaken`` (a ValueError).
    send: enqueues up to 10 ExtractRequests; returns how many were sent.
    publish: publishes a pipeline event.
    """

    catalog: Callable[[], Catalog]
    claim: Callable[[str, str, datetime], None]
    send: Callable[[list[ExtractRequest]], int]
    publish: Callable[[PipelineEvent], Any]


@dataclass(frozen=True)
class ScheduledRun:
    run_id: str
    trigger: Trigger
    sent: int
    datasets: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "trigger": self.trigger.value, "sent": self.sent, "datasets": self.datasets}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _token() -> str:
    return secrets.token_hex(8)


@dataclass
class Scheduler:
    ports: Ports
    window_years: int
    clock: Callable[[], datetime] = _utcnow
    token: Callable[[], str] = _token

    def schedule(self, event: Any) -> ScheduledRun:
        """Plan a run from a trigger, claim its run id, enqueue one ExtractRequest per entry, announce it.

        Raises
        ------
        BadScheduleRequest
            On a payload that is not an object, a malformed request, an unknown dataset, a window in the future,
            or a run id an earlier invoke already used; nothing is sent.
        scheduler.adapters.SendError, scheduler.adapters.ClaimError, datalake.events.PublishError
            When AWS fails (the invocation fails and EventBridge retries it).
        """
        request, now, seed = parse_trigger(event, self.clock(), self.token())
        try:
            plan = plan_run(self.ports.catalog(), request, now, seed, self.window_years)
            self.ports.claim(plan.run_id, seed, now)
        except (CatalogError, ValueError) as exc:  # RunIdTaken is a ValueError
            raise BadScheduleRequest(f"invalid scheduler request, nothing sent: {exc}") from exc
        logger.set_correlation_id(plan.run_id)
        logger.append_keys(run_id=plan.run_id)
        sent = sum(self.ports.send(batch) for batch in chunks(plan.requests))
        self.ports.publish(
            RunStarted(run_id=plan.run_id, trigger=plan.trigger, datasets=plan.datasets, counts={"requests": sent})
        )
        return ScheduledRun(run_id=plan.run_id, trigger=plan.trigger, sent=sent, datasets=plan.datasets)


def build_scheduler(settings: Any) -> Scheduler:
    """The scheduler wired to AWS from a validated ``SchedulerSettings``."""
    from datalake.events import publish_event
    from scheduler.adapters import claim_run_id, send_batch

    return Scheduler(
        ports=Ports(
            catalog=load_catalog,
            claim=lambda run_id, seed, now: claim_run_id(settings.state_table, run_id, seed, now),
            send=lambda batch: send_batch(settings.extract_queue_url, batch),
            publish=lambda event: publish_event(event, settings.pipeline_topic_arn),
        ),
        window_years=settings.daily_window_years,
    )
