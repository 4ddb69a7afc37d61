"""ModelerFunction: a batch of ``dataset.staged`` events (PipelineTopic -> ModelQueue) becomes one mart rebuild.

Each SQS record is an SNS notification whose ``Message`` is the event. Records that do not parse, or are not
``dataset.staged``, fail on their own (partial batch response); the valid ones are served by a single rebuild.
A rebuild that cannot finish (an AWS error) raises, so the whole batch returns to the queue and is retried: the
rebuild is idempotent, so a retry converges on the same marts. A batch that finds the rebuild lock held by another
rebuild is sent back to the queue as new, delayed messages instead (``modeler.requeue``): waiting for the lock
never uses up receives towards the ModelDLQ.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from datalake.batch import BatchProcessor, EventType
from datalake.contracts import DatasetStaged, StageFailed, parse_pipeline_event
from datalake.observability import logger, metrics, tracer
from datalake.records import SnsEnvelopeRecord
from datalake.settings import ModelerSettings, settings_for

settings = settings_for(ModelerSettings)
processor = BatchProcessor(event_type=EventType.SQS, model=SnsEnvelopeRecord)

LOCK_MARGIN_SECONDS = 30
# How long a batch that found the lock held waits before it is delivered again: half the modeler's 600 s timeout,
# so a waiting batch looks again about twice per rebuild.
LOCK_WAIT_SECONDS = 300


class UnexpectedEvent(ValueError):
    """The ModelQueue delivered an event other than dataset.staged (the subscription filter is wrong)."""


@tracer.capture_method
def record_handler(record: SnsEnvelopeRecord) -> DatasetStaged:
    """Parse one record into its dataset.staged event.

    Raises
    ------
    pydantic.ValidationError
        When the message is not a valid pipeline event.
    UnexpectedEvent
        When it is another event type.
    """
    event = parse_pipeline_event(record.message)
    if not isinstance(event, DatasetStaged):
        raise UnexpectedEvent(f"ModelQueue delivered {event.event_type.value}; only dataset.staged is modelled")
    return event


def _publish_failure(run_id: str, exc: Exception) -> None:
    from modeler.adapters import EventSink

    EventSink(settings.pipeline_topic_arn).publish(
        StageFailed(run_id=run_id, stage="modeler", reason=f"mart rebuild failed: {exc}", error_type=type(exc).__name__)
    )


def load_build_code() -> None:
    """pyarrow and the mart code load here, on the path that builds, not at import (cold start); pyarrow's pandas
    probe is answered first (``datalake.arrow``), so pandas stays unloaded."""
    from datalake.arrow import skip_pandas_probe

    skip_pandas_probe()
    import modeler.build  # noqa: F401


@tracer.capture_method
def rebuild(staged: list[DatasetStaged], context: LambdaContext) -> dict[str, int]:
    load_build_code()
    from modeler.adapters import EventSink, LakeMarts, LockHeld, MartState
    from modeler.build import rebuild_marts

    lease = max(60, context.get_remaining_time_in_millis() // 1000 + LOCK_MARGIN_SECONDS)
    run_id = max(e.run_id for e in staged)
    try:
        report = rebuild_marts(
            staged,
            LakeMarts(settings.lake_bucket),
            MartState(settings.state_table),
            EventSink(settings.pipeline_topic_arn),
            now=datetime.now(UTC),
            owner=context.aws_request_id,
            lease_seconds=lease,
        )
    except LockHeld:
        logger.warning("another rebuild holds the lock; the batch goes back to the queue")
        raise
    except Exception as exc:
        logger.exception("mart rebuild failed; the batch returns to the queue")
        _publish_failure(run_id, exc)
        raise
    for status, count in report.counts.items():
        metrics.add_metric(name=f"Marts_{status}", unit=MetricUnit.Count, value=count)
    logger.info(
        "marts rebuilt", extra={"counts": report.counts, "failed": [o.check for o in report.by_status("failed")]}
    )
    return report.counts


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Rebuild the marts fed by a batch of staged datasets.

    Parameters
    ----------
    event: an SQS event from the ModelQueue (up to 100 records, gathered over a 60 s batching window).

    Returns
    -------
    The partial batch response: the records that did not parse, by message id.

    Raises
    ------
    Exception
        When the rebuild cannot finish; every record of the batch is retried (a held lock is not such a case: the
        batch goes back to the queue as new messages, and the invocation succeeds).
    """
    # Nothing carries over from the previous batch (the runtime's own keys, e.g. service, stay).
    logger.set_correlation_id(None)
    logger.remove_keys(["run_id", "datasets"])
    with processor(records=event["Records"], handler=record_handler, lambda_context=context):
        results = processor.process()
    staged = [result for status, result, _ in results if status == "success"]
    if staged:
        run_id = max(e.run_id for e in staged)
        logger.set_correlation_id(run_id)
        logger.append_keys(run_id=run_id, datasets=sorted({f"{e.source}/{e.dataset}" for e in staged}))
        metrics.add_metric(name="StagedEventsModelled", unit=MetricUnit.Count, value=len(staged))
        try:
            rebuild(staged, context)
        except Exception as exc:
            from modeler.adapters import LockHeld  # loaded by rebuild() already
            from modeler.requeue import requeue

            if not isinstance(exc, LockHeld):
                raise
            failed = {f["itemIdentifier"] for f in processor.response()["batchItemFailures"]}
            waiting = [r for r in event["Records"] if r["messageId"] not in failed]
            moved = requeue(waiting, LOCK_WAIT_SECONDS)
            metrics.add_metric(name="BatchesRequeuedWhileLocked", unit=MetricUnit.Count, value=1)
            logger.info("batch sent back to the queue behind the lock", extra={"messages": moved})
    return processor.response()
