"""ExtractorFunction: each ExtractRequest of an SQS batch becomes a raw landing in S3, or a recorded failure.

Powertools wiring only; the work is in the connectors (bls_api, bls_bulk, snapshots), the lander and the domain.

- The BLS API series of the whole batch are fetched first, coalesced into as few POSTs as the limits allow;
  records whose idempotency record is already COMPLETED (a redelivery) are left out. Each record then lands its
  own series, so retries and DLQ entries stay per series.
- Every record is processed by the BatchProcessor (partial batch failures) inside a Powertools idempotent unit
  keyed on ``run_id#source#dataset``.
- A permanent failure (nonexistent series or dataset, malformed request) sends the original body to the
  ExtractDLQ with a ``failure_reason`` and counts as done. A quota refusal (``REQUEST_NOT_PROCESSED``) fails the
  record after deferring it with a growing visibility timeout. Anything else transient fails the record, except
  on its last receive (``maxReceiveCount``): SQS would move it to the DLQ with no reason, so the extractor
  dead-letters it itself, with the reason of that last failure. A DataUSA or Socrata payload that is still bad on
  that receive (HTML, truncated JSON, not UTF-8) is landed as it is instead, for the transformer to quarantine.
- A Socrata extraction that does not fit one invocation checkpoints and continues in a new message
  (``extractor.socrata``). A record reached with less than ``MIN_START_SECONDS`` left is not started: it goes back
  to the queue as a new message (postponed), so a long record never starves the rest of its batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from datalake.aws import client
from datalake.batch import BatchProcessor, EventType, process_partial_response
from datalake.contracts import ExtractRequest
from datalake.events import PublishError
from datalake.idempotency import idempotency_config
from datalake.lake import LakeError
from datalake.observability import logger, metrics, tracer
from datalake.records import ExtractRecord
from datalake.settings import ExtractorSettings, settings_for
from datalake.state import StateError
from extractor.budget import current_budget, time_budget
from extractor.domain import deferral_seconds
from extractor.errors import Deferred, ExtractionError, PermanentFailure
from extractor.paging import MIN_START_SECONDS
from extractor.queues import QueueError
from extractor.service import Invocation
from extractor.telemetry import telemetry

settings = settings_for(ExtractorSettings)
# A batch whose every record failed (a quota day) is reported record by record, like any partial failure: the
# deferred visibility timeouts then hold, and the function does not count an error for a refusal by the source.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
# A continuation of a paged extraction is a unit of work of its own: its key adds the checkpoint segment it resumes.
IDEMPOTENCY_KEY = (
    "continuation && join('#', [run_id, source, dataset, to_string(continuation.segment)])"
    " || join('#', [run_id, source, dataset])"
)
config = idempotency_config(IDEMPOTENCY_KEY)


def extract(request: ExtractRequest, invocation: Invocation, final: bool = False) -> dict[str, Any]:
    """The unit of work: one request, made idempotent per ``run_id#source#dataset`` by ``idempotency()``.

    ``final``: this is the request's last receive; a bad DataUSA or Socrata payload is then landed as it is (the
    transformer quarantines it, the raw bytes survive) instead of failing once more.

    Only outcomes are remembered (``extracted``, ``unchanged``). Every failure, permanent ones included, leaves no
    idempotency record, so a message redriven from the DLQ once its cause is fixed is processed again.

    Returns
    -------
    ``{"outcome": "extracted" | "unchanged", ...}``, stored as the idempotent result.

    Raises
    ------
    PermanentFailure, Deferred, TransientFailure
    """
    return invocation.extract(request, keep_bad=final)


@dataclass(frozen=True)
class Idempotency:
    persistence: DynamoDBPersistenceLayer
    extract: Callable[..., dict[str, Any]]

    def already_done(self, request: ExtractRequest) -> bool:
        """Whether this request's record is COMPLETED (a redelivery): its series then needs no API call."""
        self.persistence.configure(config, f"{extract.__module__}.{extract.__qualname__}")
        try:
            record = self.persistence.get_record(request.model_dump(mode="json"))
        except IdempotencyItemNotFoundError:
            return False
        return record is not None and record.status == "COMPLETED" and not record.is_expired


@cache
def idempotency(table_name: str) -> Idempotency:
    """The extractor's own persistence layer and idempotent unit, built on first use (no AWS client at import).

    Its own layer, not a shared one: Powertools configures a layer once, with the first function's key.
    """
    persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client("dynamodb"))
    unit = idempotent_function(data_keyword_argument="request", config=config, persistence_store=persistence)(extract)
    return Idempotency(persistence, unit)


def last_receive(record: SQSRecord) -> bool:
    """Whether SQS would move this message to the DLQ if it failed now."""
    return int(record.attributes.approximate_receive_count or 1) >= settings.extract_max_receive_count


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord, invocation: Invocation) -> dict[str, Any]:
    """Process one SQS record.

    Returns
    -------
    The outcome; a permanent failure is dead-lettered with its reason and counts as done; a record postponed for
    lack of time is sent back to the queue and counts as done.

    Raises
    ------
    Deferred
        After deferring the message (growing visibility timeout): the record fails and returns later.
    TransientFailure, IdempotencyAlreadyInProgressError, LakeError, StateError, PublishError, QueueError
        To fail the record; SQS redelivers it.
    """
    try:
        request = ExtractRecord.model_validate(record.raw_event).body
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        return invocation.dead_letter(record, None, f"invalid ExtractRequest: {problems}"[:1000])
    logger.set_correlation_id(request.run_id)
    budget = current_budget()
    if invocation.started and budget is not None and budget.remaining() < MIN_START_SECONDS:
        return invocation.postpone(record, request)  # the records before it used the time
    invocation.started += 1
    logger.append_keys(source=request.source.value, dataset=request.dataset)
    try:
        outcome = idempotency(settings.idempotency_table).extract(
            request=request, invocation=invocation, final=last_receive(record)
        )
    except PermanentFailure as exc:
        return invocation.dead_letter(record, request, exc)
    except Deferred as exc:
        receive_count = int(record.attributes.approximate_receive_count or 1)
        seconds = deferral_seconds(receive_count)
        telemetry.count("ExtractFailures", reason=exc.reason_code)
        try:
            invocation.queues.defer(record.event_source_arn, record.receipt_handle, seconds)
        except QueueError as queue_exc:
            logger.error("could not defer the message", extra={"error": str(queue_exc)})
        logger.warning("request deferred", extra={"reason": str(exc), "retry_in_seconds": seconds})
        raise
    except ExtractionError as exc:
        if last_receive(record):
            return invocation.dead_letter(record, request, exc)
        telemetry.count("ExtractFailures", reason=exc.reason_code)
        logger.warning("request failed, will be retried", extra={"reason": str(exc), "error_type": exc.reason_code})
        raise
    except IdempotencyAlreadyInProgressError:
        telemetry.count("ExtractFailures", reason="in_progress")
        raise
    except (LakeError, StateError, PublishError, QueueError) as exc:
        # An AWS call failed (S3, DynamoDB, SNS, SQS): say why, so a request that ends in the DLQ after
        # maxReceiveCount has its reason in the logs (SQS moves it there without one), and on the last receive
        # try to dead-letter it with that reason (if SQS is what fails, SQS moves it, and the logs keep the reason).
        telemetry.count("ExtractFailures", reason="aws")
        logger.warning("request failed, will be retried", extra={"reason": str(exc), "error_type": type(exc).__name__})
        if last_receive(record):
            try:
                return invocation.dead_letter(record, request, f"{type(exc).__name__}: {exc}", "aws")
            except (QueueError, PublishError) as dlq_exc:
                logger.error("could not dead-letter on the last receive", extra={"error": str(dlq_exc)})
        raise
    finally:
        logger.remove_keys(["source", "dataset"])
    logger.debug("request done", extra={"outcome": outcome.get("outcome")})
    return outcome


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Extract an SQS batch of ExtractRequests.

    Parameters
    ----------
    event: the SQS event (ExtractQueue), up to 50 records.

    Returns
    -------
    ``{"batchItemFailures": [...]}``: the records to redeliver.
    """
    config.register_lambda_context(context)
    metrics.add_metric(name="ExtractRequestsReceived", unit=MetricUnit.Count, value=len(event.get("Records", [])))
    invocation = Invocation(settings)
    requests = invocation.requests_of(event)
    run_ids = sorted({r.run_id for r in requests})
    if run_ids:  # the batch's logs before any record (the prefetch) carry the run id too
        logger.set_correlation_id(",".join(run_ids))
    try:
        with time_budget(context.get_remaining_time_in_millis()):
            invocation.prefetch(requests, idempotency(settings.idempotency_table).already_done)
            return process_partial_response(
                event=event,
                record_handler=lambda record: record_handler(record, invocation),
                processor=processor,
                context=context,
            )
    finally:
        telemetry.flush(settings.service)
