"""The notifier's three kinds of invocation, parsed and handed to the service; their log keys and metrics.

- a NotifyQueue record: a pipeline event feeds the run ledger and tells failures, quarantines and settled runs;
  an AlarmTopic message (a CloudWatch alarm, AWS Budgets) is told as it comes;
- the housekeeping schedule (EventBridge): freshness metrics per source, and runs that never settled are closed;
- a manual ``{"action": "settle", "run_id": ...}``: close one run (or every open run) now, with what is known.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, ValidationError

from datalake.contracts import RunId, parse_pipeline_event
from datalake.observability import logger, metrics
from datalake.records import EventBridgeModel, SnsEnvelopeRecord
from datalake.telemetry import put_metric
from notifier.domain.summary import summary_counts
from notifier.service import Delivery, Notifier


class SettleRequest(BaseModel):
    """A manual invoke: close one run (or every open run) now, as it stands."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    action: Literal["settle"]
    run_id: RunId | None = None


class BadNotifierRequest(ValueError):
    """A direct invoke that is neither a scheduled event nor a settle request."""


def forget_run() -> None:
    """Each record sets its own run's correlation id; nothing carries over from the previous invocation."""
    logger.set_correlation_id(None)
    logger.remove_keys(["run_id", "event_type"])


def count_deliveries(deliveries: list[Delivery], service: str) -> None:
    """Notices sent and suppressed by kind, and, for each summary sent, its run's outcomes and stage times."""
    for delivery in deliveries:
        name = {"sent": "NotificationsSent", "suppressed": "NotificationsSuppressed"}.get(delivery.status)
        if name is None:
            continue
        put_metric(name, 1, MetricUnit.Count, service, Kind=delivery.notice.kind.value)
        logger.info(
            f"{delivery.notice.kind.value} notice {delivery.status}",
            extra={"subject": delivery.notice.subject, "channels": list(delivery.channels)},
        )
        if delivery.report is not None and delivery.status == "sent":
            report = delivery.report
            for outcome, count in summary_counts(report).items():
                put_metric("RunDatasets", count, MetricUnit.Count, service, Outcome=outcome)
            for stage, seconds in report.stage_seconds.items():
                put_metric("RunStageSeconds", seconds, MetricUnit.Seconds, service, Stage=stage)
            metrics.add_metric(
                name="RunRowsStaged", unit=MetricUnit.Count, value=sum(t.written for t in report.tables.values())
            )


def handle_record(notifier: Notifier, record: SnsEnvelopeRecord, service: str) -> None:
    """One NotifyQueue record: a pipeline event (message attribute ``event_type``) or an AlarmTopic message.

    ``service`` is the metrics' service dimension (POWERTOOLS_SERVICE_NAME: the dashboard and alarms name it).

    Raises
    ------
    pydantic.ValidationError
        When a pipeline event does not match its contract (the record fails; only this one).
    notifier.delivery.DeliveryError, datalake.state.StateError
        When a channel or the state table fails; the record retries and resumes where it stopped.
    """
    delivery_id = record.body.MessageId
    if record.attribute("event_type") is None:
        forget_run()
        count_deliveries([notifier.on_alarm_topic_message(record.body.Subject, record.message, delivery_id)], service)
        metrics.add_metric(name="AlarmNotifications", unit=MetricUnit.Count, value=1)
        return
    event = parse_pipeline_event(record.message)
    logger.set_correlation_id(event.run_id)
    logger.append_keys(run_id=event.run_id, event_type=event.event_type.value)
    count_deliveries(notifier.on_pipeline_event(event, delivery_id), service)
    metrics.add_metric(name="PipelineEventsRecorded", unit=MetricUnit.Count, value=1)
    logger.info("pipeline event recorded", extra={"source": event.source, "dataset": event.dataset})


def housekeeping(
    notifier: Notifier, run_id: str | None, older_than: timedelta, delivery_id: str, service: str
) -> dict[str, Any]:
    """Report freshness per source, and close runs that did not settle by themselves."""
    for source, hours in notifier.freshness().items():
        if hours is not None:  # never confirmed: no datapoint (the freshness alarm treats missing data as such)
            put_metric("FreshnessHours", hours, MetricUnit.NoUnit, service, Source=source)
    if run_id is not None:
        logger.set_correlation_id(run_id)
    deliveries = notifier.settle(run_id, older_than, delivery_id)
    count_deliveries(deliveries, service)
    return {"summaries": [d.notice.subject for d in deliveries if d.status == "sent"]}


def handle_direct(
    notifier: Notifier, event: dict[str, Any], request_id: str, settle_after: timedelta, service: str
) -> dict[str, Any]:
    """The housekeeping schedule, or a manual settle request (``settle_after``: how old an open run is closed).

    Returns
    -------
    ``{"summaries": [...]}``: the subjects of the summaries sent.

    Raises
    ------
    BadNotifierRequest
        On a direct invoke that is neither the schedule nor ``{"action": "settle", "run_id"?: ...}``.
    """
    if event.get("source") == "aws.events" or "detail-type" in event:
        scheduled = EventBridgeModel.model_validate(event)
        return housekeeping(notifier, None, settle_after, f"schedule#{scheduled.id}", service)
    try:
        request = SettleRequest.model_validate(event)
    except ValidationError as exc:
        raise BadNotifierRequest(f"not a notifier request: {exc.errors(include_url=False)}") from exc
    return housekeeping(notifier, request.run_id, timedelta(0), f"settle#{request_id}", service)
