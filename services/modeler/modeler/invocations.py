"""The modeler's invocation: a ModelQueue batch of ``dataset.staged`` events becomes one mart rebuild.

Each SQS record is an SNS notification whose ``Message`` is the event. Records that do not parse, or are not
``dataset.staged``, fail on their own (partial batch response); the valid ones are served by a single rebuild.
A rebuild that cannot finish (an AWS error) raises, so the whole batch returns to the queue and is retried: the
rebuild is idempotent, so a retry converges on the same marts. A batch that finds the rebuild lease held by another
rebuild is sent back to the queue as new, delayed messages instead (``modeler.requeue``): waiting for the lease
never uses up receives towards the ModelDLQ.

Light on purpose: the handler imports this module at cold start; pyarrow, boto3 and the mart code load with the
ports (``compose``), on the first batch that has something to build.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from datalake.contracts import DatasetStaged, StageFailed, parse_pipeline_event
from datalake.observability import logger, metrics, tracer
from datalake.records import SnsEnvelopeRecord

if TYPE_CHECKING:
    from datalake.lease import Lease
    from datalake.settings import ModelerSettings
    from modeler.adapters import EventSink, LakeMarts, MartState

# The one rebuild lease (``LOCK#modeler`` / ``LEASE`` in the state table): two rebuilds never overlap, beside
# reserved concurrency 1, which does not cover manual invokes and local runs.
REBUILD_LEASE = "modeler"
LOCK_MARGIN_SECONDS = 30
# How long a batch that found the lease held waits before it is delivered again: half the modeler's 600 s timeout,
# so a waiting batch looks again about twice per rebuild.
LOCK_WAIT_SECONDS = 300


class UnexpectedEvent(ValueError):
    """The ModelQueue delivered an event other than dataset.staged (the subscription filter is wrong)."""


@dataclass
class Ports:
    """What a rebuild reads and writes: the lake (staging in, marts out), the published marts, the pipeline topic,
    the rebuild lease, and the queue a waiting batch goes back to (``requeue(records, delay_seconds) -> sent``)."""

    lake: LakeMarts
    state: MartState
    events: EventSink
    lease: Lease
    requeue: Callable[[list[dict[str, Any]], int], int]


def load_build_code() -> None:
    """pyarrow and the mart code load here, on the path that builds, not at import (cold start); pyarrow's pandas
    probe is answered first (``datalake.arrow``), so pandas stays unloaded."""
    from datalake.arrow import skip_pandas_probe

    skip_pandas_probe()
    import modeler.build  # noqa: F401


def compose(settings: ModelerSettings) -> Ports:
    """The ports wired to AWS from a validated ``ModelerSettings`` (the mart code is loaded first)."""
    load_build_code()
    from datalake.lease import Lease
    from modeler.adapters import EventSink, LakeMarts, MartState
    from modeler.requeue import requeue

    return Ports(
        lake=LakeMarts(settings.lake_bucket),
        state=MartState(settings.state_table),
        events=EventSink(settings.pipeline_topic_arn),
        lease=Lease(settings.state_table, wait_seconds=0),  # a held lease sends the batch back; it never waits
        requeue=requeue,
    )


def forget_batch() -> None:
    """Nothing carries over from the previous batch (the runtime's own keys, e.g. service, stay)."""
    logger.set_correlation_id(None)
    logger.remove_keys(["run_id", "datasets"])


def staged_event(record: SnsEnvelopeRecord) -> DatasetStaged:
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


@tracer.capture_method
def rebuild(ports: Ports, staged: list[DatasetStaged], lease_seconds: int) -> dict[str, int]:
    """One rebuild of the marts fed by ``staged``, under the rebuild lease; its outcome counts, as metrics too.

    Raises
    ------
    datalake.lease.LeaseBusy
        When another rebuild holds the lease; nothing was built.
    Exception
        Any other failure, after ``stage.failed`` is published for it.
    """
    from datalake.lease import LeaseBusy
    from modeler.build import rebuild_marts

    try:
        report = rebuild_marts(
            staged,
            ports.lake,
            ports.state,
            ports.events,
            ports.lease.hold(REBUILD_LEASE, lease_seconds),
            now=datetime.now(UTC),
        )
    except LeaseBusy:
        logger.warning("another rebuild holds the lease; the batch goes back to the queue")
        raise
    except Exception as exc:
        logger.exception("mart rebuild failed; the batch returns to the queue")
        failure = StageFailed(
            run_id=max(e.run_id for e in staged),
            stage="modeler",
            reason=f"mart rebuild failed: {exc}",
            error_type=type(exc).__name__,
        )
        ports.events.publish(failure)
        raise
    for status, count in report.counts.items():
        metrics.add_metric(name=f"Marts_{status}", unit=MetricUnit.Count, value=count)
    logger.info(
        "marts rebuilt", extra={"counts": report.counts, "failed": [o.check for o in report.by_status("failed")]}
    )
    return report.counts


def model_batch(
    ports: Ports, staged: list[DatasetStaged], records: list[dict[str, Any]], remaining_ms: int
) -> dict[str, int] | None:
    """Rebuild the marts for the batch's valid events, or send their records back behind a held lease.

    Parameters
    ----------
    staged: the batch's dataset.staged events (at least one).
    records: the raw SQS records those events came from (sent back to their queue if the lease is held).
    remaining_ms: the invocation's remaining time: the lease lasts that long, plus a margin.

    Returns
    -------
    The rebuild's counts per outcome; None when the batch went back to the queue.

    Raises
    ------
    modeler.requeue.RequeueError
        When the batch cannot be sent back: it fails whole instead, so nothing is lost.
    Exception
        When the rebuild cannot finish; every record of the batch is retried.
    """
    from datalake.lease import LeaseBusy

    run_id = max(e.run_id for e in staged)
    logger.set_correlation_id(run_id)
    logger.append_keys(run_id=run_id, datasets=sorted({f"{e.source}/{e.dataset}" for e in staged}))
    metrics.add_metric(name="StagedEventsModelled", unit=MetricUnit.Count, value=len(staged))
    lease_seconds = max(60, remaining_ms // 1000 + LOCK_MARGIN_SECONDS)
    try:
        return rebuild(ports, staged, lease_seconds)
    except LeaseBusy:
        moved = ports.requeue(records, LOCK_WAIT_SECONDS)
        metrics.add_metric(name="BatchesRequeuedWhileLocked", unit=MetricUnit.Count, value=1)
        logger.info("batch sent back to the queue behind the lease", extra={"messages": moved})
        return None
