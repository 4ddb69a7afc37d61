"""NotifierFunction: NotifyQueue (pipeline events and alarms, SNS-in-SQS) becomes messages for people.

Three kinds of invocation:
- the NotifyQueue batch (partial batch failures): pipeline events feed the run ledger and tell failures,
  quarantines and settled runs; AlarmTopic messages (CloudWatch alarms, AWS Budgets) are told as they come;
- the housekeeping schedule (EventBridge): freshness metrics per source, and runs that never settled are closed;
- a manual ``{"action": "settle", "run_id": ...}``: close one run (or every open run) now, with what is known.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, ValidationError

from datalake.batch import BatchProcessor, EventType, process_partial_response
from datalake.contracts import RunId, parse_pipeline_event
from datalake.observability import METRICS_NAMESPACE, logger, metrics, tracer
from datalake.records import EventBridgeModel, SnsEnvelopeRecord
from datalake.settings import NotifierSettings, settings_for
from notifier.delivery import AlertsTopic, DeliveryGuard, Webhook
from notifier.domain import summary_counts
from notifier.ledger import RunLedger
from notifier.links import ConsoleLinks
from notifier.service import Delivery, Notifier

settings = settings_for(NotifierSettings)
processor = BatchProcessor(event_type=EventType.SQS, model=SnsEnvelopeRecord)


class SettleRequest(BaseModel):
    """A manual invoke: close one run (or every open run) now, as it stands."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    action: Literal["settle"]
    run_id: RunId | None = None


class BadNotifierRequest(ValueError):
    """A direct invoke that is neither a scheduled event nor a settle request."""


@cache
def notifier() -> Notifier:
    """The notifier and its adapters, composed once per container."""
    _, _, _, region, account, _ = settings.alerts_topic_arn.split(":", 5)
    return Notifier(
        ledger=RunLedger(settings.state_table),
        guard=DeliveryGuard(settings.state_table),
        topic=AlertsTopic(settings.alerts_topic_arn),
        webhook=Webhook(settings.webhook_url_param),
        links=ConsoleLinks(
            region=region,
            account_id=account,
            prefix=settings.resource_prefix or "",
            lake_bucket=settings.lake_bucket,
            log_group_prefix=settings.log_group_prefix,
        ),
        window=timedelta(minutes=settings.dedupe_window_minutes),
    )


def _metric(name: str, value: float, unit: MetricUnit, dimension: tuple[str, str]) -> None:
    """One EMF metric with a low-cardinality dimension beside ``service``."""
    with single_metric(
        name=name, unit=unit, value=value, namespace=METRICS_NAMESPACE, default_dimensions={"service": settings.service}
    ) as metric:
        metric.add_dimension(name=dimension[0], value=dimension[1])


def _count(deliveries: list[Delivery]) -> None:
    for delivery in deliveries:
        name = {"sent": "NotificationsSent", "suppressed": "NotificationsSuppressed"}.get(delivery.status)
        if name is None:
            continue
        _metric(name, 1, MetricUnit.Count, ("Kind", delivery.notice.kind.value))
        logger.info(
            f"{delivery.notice.kind.value} notice {delivery.status}",
            extra={"subject": delivery.notice.subject, "channels": list(delivery.channels)},
        )
        if delivery.report is not None and delivery.status == "sent":
            report = delivery.report
            for outcome, count in summary_counts(report).items():
                _metric("RunDatasets", count, MetricUnit.Count, ("Outcome", outcome))
            for stage, seconds in report.stage_seconds.items():
                _metric("RunStageSeconds", seconds, MetricUnit.Seconds, ("Stage", stage))
            metrics.add_metric(
                name="RunRowsStaged", unit=MetricUnit.Count, value=sum(t.written for t in report.tables.values())
            )


@tracer.capture_method
def record_handler(record: SnsEnvelopeRecord) -> None:
    """One NotifyQueue record: a pipeline event (message attribute ``event_type``) or an AlarmTopic message.

    Raises
    ------
    pydantic.ValidationError
        When a pipeline event does not match its contract (the record fails; only this one).
    notifier.delivery.DeliveryError, datalake.state.StateError
        When a channel or the state table fails; the record retries and resumes where it stopped.
    """
    delivery_id = record.body.MessageId
    if record.attribute("event_type") is None:
        logger.set_correlation_id(None)
        logger.remove_keys(["run_id", "event_type"])
        _count([notifier().on_alarm_topic_message(record.body.Subject, record.message, delivery_id)])
        metrics.add_metric(name="AlarmNotifications", unit=MetricUnit.Count, value=1)
        return
    event = parse_pipeline_event(record.message)
    logger.set_correlation_id(event.run_id)
    logger.append_keys(run_id=event.run_id, event_type=event.event_type.value)
    deliveries = notifier().on_pipeline_event(event, delivery_id)
    _count(deliveries)
    metrics.add_metric(name="PipelineEventsRecorded", unit=MetricUnit.Count, value=1)
    logger.info("pipeline event recorded", extra={"source": event.source, "dataset": event.dataset})


def housekeeping(run_id: str | None, older_than: timedelta, delivery_id: str) -> dict[str, Any]:
    """Report freshness per source, and close runs that did not settle by themselves."""
    for source, hours in notifier().freshness().items():
        if hours is not None:  # never confirmed: no datapoint, and the freshness alarm treats missing as breaching
            _metric("FreshnessHours", hours, MetricUnit.NoUnit, ("Source", source))
    if run_id is not None:
        logger.set_correlation_id(run_id)
    deliveries = notifier().settle(run_id, older_than, delivery_id)
    _count(deliveries)
    return {"summaries": [d.notice.subject for d in deliveries if d.status == "sent"]}


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Dispatch a NotifyQueue batch, the housekeeping schedule, or a manual settle request.

    Returns
    -------
    ``{"batchItemFailures": [...]}`` for a batch; ``{"summaries": [...]}`` (subjects sent) otherwise.

    Raises
    ------
    BadNotifierRequest
        On a direct invoke that is neither the schedule nor ``{"action": "settle", "run_id"?: ...}``.
    """
    # Each record sets its own run's correlation id; nothing carries over from the previous invocation.
    logger.set_correlation_id(None)
    logger.remove_keys(["run_id", "event_type"])
    if "Records" in event:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    if event.get("source") == "aws.events" or "detail-type" in event:
        scheduled = EventBridgeModel.model_validate(event)
        return housekeeping(None, timedelta(hours=settings.run_settle_hours), f"schedule#{scheduled.id}")
    try:
        request = SettleRequest.model_validate(event)
    except ValidationError as exc:
        raise BadNotifierRequest(f"not a notifier request: {exc.errors(include_url=False)}") from exc
    return housekeeping(request.run_id, timedelta(0), f"settle#{context.aws_request_id}")
