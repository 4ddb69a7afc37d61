"""ExtractorFunction: each ExtractRequest of an SQS batch becomes a raw landing in S3, or a recorded failure.

Powertools wiring only; the work is in the connectors (bls_api, bls_bulk, snapshots), the lander and the domain.

- The BLS API series of the whole batch are fetched first, coalesced into as few POSTs as the limits allow;
  records whose idempotency record is already COMPLETED (a redelivery) are left out. Each record then lands its
  own series, so retries and DLQ entries stay per series.
- Every record is processed by the BatchProcessor (partial batch failures) inside a Powertools idempotent unit
  keyed on ``run_id#source#dataset``.
- A permanent failure (nonexistent series or dataset, malformed request) sends the original body to the
  ExtractDLQ with a ``failure_reason`` and counts as done. A quota refusal (``REQUEST_NOT_PROCESSED``) fails the
  record after deferring it with a growing visibility timeout. Anything else transient fails the record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from datalake.aws import client
from datalake.contracts import ExtractRequest, Source, StageFailed
from datalake.events import publish_event
from datalake.idempotency import idempotency_config
from datalake.lake import LakeStore
from datalake.observability import logger, metrics, tracer
from datalake.records import ExtractRecord
from datalake.settings import ExtractorSettings, settings_for
from datalake.state import StateStore
from extractor.budget import time_budget
from extractor.credentials import CredentialStore
from extractor.domain import deferral_seconds
from extractor.errors import Deferred, ExtractionError, PermanentFailure
from extractor.landing import Lander
from extractor.queues import ExtractQueues, QueueError
from extractor.telemetry import telemetry

if TYPE_CHECKING:
    import requests

    from extractor.bls_api import BlsApiFetcher
    from extractor.http import HttpClient

settings = settings_for(ExtractorSettings)
# A batch whose every record failed (a quota day) is reported record by record, like any partial failure: the
# deferred visibility timeouts then hold, and the function does not count an error for a refusal by the source.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
config = idempotency_config("join('#', [run_id, source, dataset])")
credentials = CredentialStore()


@cache
def http_session(contact_email: str) -> requests.Session:
    """One session per cold start (connection reuse across invocations), retries mounted."""
    from extractor.http import new_session, user_agent

    return new_session(user_agent(contact_email))


class Invocation:
    """The collaborators of one invocation, built from the settings; connectors are imported on first use."""

    def __init__(self, current: ExtractorSettings) -> None:
        self.settings = current
        self.lake = LakeStore(current.lake_bucket)
        self.state = StateStore(current.state_table)
        self.lander = Lander(self.lake, self.state, current.pipeline_topic_arn)
        self.queues = ExtractQueues(current.extract_dlq_url)
        self.idempotency = idempotency(current.idempotency_table)
        self._http: HttpClient | None = None
        self._bls: BlsApiFetcher | None = None

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            from extractor.http import HttpClient

            self._http = HttpClient(
                http_session(self.settings.contact_email), max_bytes=self.settings.max_payload_bytes
            )
        return self._http

    @property
    def bls(self) -> BlsApiFetcher:
        """The batch's BLS fetcher. Reading the key may fail (SSM outage): then every BLS record fails alone."""
        if self._bls is None:
            from extractor.bls_api import BlsApiFetcher

            key = credentials.get(self.settings.bls_api_key_param)
            self._bls = BlsApiFetcher(
                self.http, self.settings.bls_api_url, key, datetime.now(UTC).date(), self.settings.daily_window_years
            )
        return self._bls

    # -- the batch ----------------------------------------------------------------------------------------------
    def prefetch(self, event: dict[str, Any]) -> None:
        """Fetch the BLS API series of the whole batch in as few queries as the limits allow."""
        wanted = []
        for raw in event.get("Records", []):
            try:
                request = ExtractRecord.model_validate(raw).body
            except ValidationError:
                continue  # dead-lettered with its reason when its record is processed
            if request.source is Source.BLS_API and not self.idempotency.already_done(request):
                wanted.append(request)
        if not wanted:
            return
        try:
            sent = self.bls.prefetch(wanted)
        except ExtractionError as exc:
            logger.warning("BLS prefetch failed; each BLS record will fail on its own", extra={"error": str(exc)})
            return
        logger.info("BLS API prefetch", extra={"series": len(wanted), "queries": sent})

    # -- one request --------------------------------------------------------------------------------------------
    def extract(self, request: ExtractRequest) -> dict[str, Any]:
        """Fetch one request from its source and land it (or record it unchanged)."""
        if request.source is Source.BLS_BULK:
            from extractor.bls_bulk import BulkMirror

            return BulkMirror(self.http, self.settings.bls_bulk_url, self.lake, self.state, self.lander).sync(request)
        if request.source is Source.BLS_API:
            fetched = self.bls.fetched_for(request)
        elif request.source is Source.DATAUSA:
            from extractor.snapshots import fetch_datausa

            fetched = fetch_datausa(self.http, self.settings.datausa_url, request)
        else:
            from extractor.snapshots import fetch_socrata

            fetched = fetch_socrata(
                self.http,
                self.settings.socrata_url,
                request,
                request.params.page_size or self.settings.socrata_page_size,
                credentials.get(self.settings.socrata_app_token_param),
                self.settings.max_payload_bytes,
            )
        try:
            return self.lander.land(fetched)
        finally:
            fetched.close()

    def dead_letter(self, record: SQSRecord, request: ExtractRequest | None, error: ExtractionError | str) -> dict:
        """Send the original body to the ExtractDLQ with its reason; tell people (stage.failed)."""
        reason = str(error)
        error_type = error.reason_code if isinstance(error, ExtractionError) else "invalid_message"
        attributes = {
            "original_message_id": record.message_id,
            "receive_count": record.attributes.approximate_receive_count,
        }
        if request is not None:
            attributes.update(source=request.source.value, dataset=request.dataset, run_id=request.run_id)
        self.queues.dead_letter(record.body, reason, error_type, attributes)
        if request is not None:
            publish_event(
                StageFailed(
                    run_id=request.run_id,
                    source=request.source,
                    dataset=request.dataset,
                    stage="extractor",
                    reason=reason,
                    error_type=error_type,
                ),
                self.settings.pipeline_topic_arn,
            )
        telemetry.count("ExtractFailures", reason=error_type)
        logger.error("request dead-lettered", extra={"reason": reason, "error_type": error_type})
        return {"outcome": "dead_lettered", "reason": reason, "error_type": error_type}


def extract(request: ExtractRequest, record: SQSRecord, invocation: Invocation) -> dict[str, Any]:
    """The unit of work: one request. Made idempotent per ``run_id#source#dataset`` by ``idempotent_extract``.

    Returns
    -------
    ``{"outcome": "extracted" | "unchanged" | "dead_lettered", ...}``, stored as the idempotent result.

    Raises
    ------
    Deferred, TransientFailure
        To fail the record: it returns to the queue.
    """
    try:
        return invocation.extract(request)
    except PermanentFailure as exc:
        return invocation.dead_letter(record, request, exc)


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


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord, invocation: Invocation) -> dict[str, Any]:
    """Process one SQS record.

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
    logger.append_keys(source=request.source.value, dataset=request.dataset)
    try:
        outcome = invocation.idempotency.extract(request=request, record=record, invocation=invocation)
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
        telemetry.count("ExtractFailures", reason=exc.reason_code)
        logger.warning("request failed, will be retried", extra={"reason": str(exc), "error_type": exc.reason_code})
        raise
    except IdempotencyAlreadyInProgressError:
        telemetry.count("ExtractFailures", reason="in_progress")
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
    try:
        with time_budget(context.get_remaining_time_in_millis()):
            invocation.prefetch(event)
            return process_partial_response(
                event=event,
                record_handler=lambda record: record_handler(record, invocation),
                processor=processor,
                context=context,
            )
    finally:
        telemetry.flush(settings.service)
