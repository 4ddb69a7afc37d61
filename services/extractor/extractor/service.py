"""The extractor's service layer: its ports, composed once per container, and one invocation's batch.

- ``Ports``: the adapters the extractor reads and writes through. ``build_ports`` makes them from the settings;
  a test passes moto-backed adapters or fakes instead.
- ``Extractor``: the ports, the settings and the idempotent unit of work. ``build_extractor`` composes it;
  ``invocation()`` starts a batch.
- ``Invocation``: one batch: the BLS prefetch, one record from its body to its outcome, and what the failure
  policy (``extractor.failures``) does with a record: dead-letter it, defer it, postpone it.

Connectors are imported on first use, so the handler's cold import stays light (no HTTP stack until a source
is called).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    BasePersistenceLayer,
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemNotFoundError
from pydantic import ValidationError

from datalake.aws import client
from datalake.contracts import ExtractRequest, PipelineEvent, Source, StageFailed
from datalake.events import publish_event
from datalake.lake import LakeStore
from datalake.records import ExtractRecord
from datalake.settings import ExtractorSettings
from datalake.state import StateStore
from extractor.budget import current_budget
from extractor.credentials import CredentialStore
from extractor.errors import ExtractionError, InvalidMessage
from extractor.landing import Lander
from extractor.paging import MIN_START_SECONDS
from extractor.policy import is_last_receive
from extractor.queues import ExtractQueues
from extractor.telemetry import telemetry

if TYPE_CHECKING:
    import requests

    from extractor.bls_api import BlsApiFetcher
    from extractor.http import HttpClient
    from extractor.socrata import SocrataExtraction

logger = Logger(child=True)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Ports:
    """What the extractor reads and writes. Each is an adapter over one resource, built once per container.

    lake: the lake bucket (landings, stored BLS responses, the bulk mirror, paging checkpoints).
    state: the state table (last landings, checkpoints, the mirrored bulk files, the bulk lease).
    queues: the ExtractQueue (continuations, postponed records, deferrals) and the ExtractDLQ.
    publish: sends a pipeline event to the PipelineTopic.
    credentials: the SSM SecureStrings (the BLS API key, the Socrata app token).
    http: makes the sources' HTTP client (over one session, so one connection pool, per container).
    idempotency: the persistence layer of the idempotency table.
    clock: now, in UTC (the BLS API's current year).
    """

    lake: LakeStore
    state: StateStore
    queues: ExtractQueues
    publish: Callable[[PipelineEvent], Any]
    credentials: CredentialStore
    http: Callable[[], HttpClient]
    idempotency: BasePersistenceLayer
    clock: Callable[[], datetime] = utc_now


def build_ports(settings: ExtractorSettings) -> Ports:
    """The ports wired to AWS and the sources from a validated ``ExtractorSettings``."""

    @cache
    def session() -> requests.Session:  # one per container: its connection pool is reused across invocations
        from extractor.http import new_session, user_agent

        return new_session(user_agent(settings.contact_email))

    def http() -> HttpClient:
        from extractor.http import HttpClient

        return HttpClient(session(), max_bytes=settings.max_payload_bytes)

    return Ports(
        lake=LakeStore(settings.lake_bucket),
        state=StateStore(settings.state_table),
        queues=ExtractQueues(settings.extract_dlq_url, settings.extract_queue_url),
        publish=lambda event: publish_event(event, settings.pipeline_topic_arn),
        credentials=CredentialStore(),
        http=http,
        idempotency=DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=client("dynamodb")),
    )


@dataclass(frozen=True)
class IdempotentUnit:
    """A function made idempotent with the extractor's own persistence layer (not a shared one: Powertools
    configures a layer once, with the first function's key)."""

    persistence: BasePersistenceLayer
    config: IdempotencyConfig
    function: Callable[..., dict[str, Any]]
    run: Callable[..., dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        wrapped = idempotent_function(
            data_keyword_argument="request", config=self.config, persistence_store=self.persistence
        )
        object.__setattr__(self, "run", wrapped(self.function))

    def already_done(self, request: ExtractRequest) -> bool:
        """Whether this request's record is COMPLETED (a redelivery): its series then needs no API call."""
        self.persistence.configure(self.config, f"{self.function.__module__}.{self.function.__qualname__}")
        try:
            record = self.persistence.get_record(request.model_dump(mode="json"))
        except IdempotencyItemNotFoundError:
            return False
        return record is not None and record.status == "COMPLETED" and not record.is_expired


@dataclass
class Extractor:
    """The extractor composed: what one invocation needs, built once per container."""

    ports: Ports
    settings: ExtractorSettings
    unit: IdempotentUnit

    def invocation(self, event: dict[str, Any]) -> Invocation:
        """The invocation of an SQS batch (``event``), its valid requests read."""
        return Invocation(self.ports, self.settings, self.unit, Invocation.requests_of(event))


def build_extractor(
    settings: ExtractorSettings,
    config: IdempotencyConfig,
    unit: Callable[..., dict[str, Any]],
    ports: Ports | None = None,
) -> Extractor:
    """The extractor composed from its ports (``build_ports(settings)`` unless given) and its unit of work.

    Parameters
    ----------
    settings: the validated settings (source URLs, limits, maxReceiveCount).
    config: the idempotency config (the business key of the unit).
    unit: the unit of work ``unit(request=..., invocation=..., final=...)``, made idempotent here.
    ports: the adapters; tests pass moto-backed ones or fakes.
    """
    ports = ports or build_ports(settings)
    return Extractor(ports, settings, IdempotentUnit(ports.idempotency, config, unit))


def request_of(record: SQSRecord) -> ExtractRequest:
    """The ExtractRequest a record carries.

    Raises
    ------
    InvalidMessage
        When its body is not one; the message says which fields are wrong.
    """
    try:
        return ExtractRecord.model_validate(record.raw_event).body
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        raise InvalidMessage(f"invalid ExtractRequest: {problems}"[:1000]) from exc


class Invocation:
    """One batch: its collaborators, the BLS answers fetched for it, and the records started in it."""

    def __init__(
        self, ports: Ports, settings: ExtractorSettings, unit: IdempotentUnit, requests: list[ExtractRequest]
    ) -> None:
        self.ports = ports
        self.settings = settings
        self.unit = unit
        self.requests = requests  # the batch's valid requests
        self.lander = Lander(ports.lake, ports.state, ports.publish)
        self._http: HttpClient | None = None
        self._bls: BlsApiFetcher | None = None
        self.started = 0  # records started in this invocation

    @property
    def queues(self) -> ExtractQueues:
        return self.ports.queues

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            self._http = self.ports.http()
        return self._http

    @property
    def bls(self) -> BlsApiFetcher:
        """The batch's BLS fetcher. Reading the key may fail (SSM outage): then every BLS record fails alone."""
        if self._bls is None:
            from extractor.bls_api import BlsApiFetcher

            key = self.ports.credentials.get(self.settings.bls_api_key_param)
            self._bls = BlsApiFetcher(
                self.http, self.settings.bls_api_url, key, self.ports.clock().date(), self.settings.daily_window_years
            )
        return self._bls

    def socrata(self) -> SocrataExtraction:
        """The Socrata connector: pages land as they come, and an extraction too long for one invocation continues
        in a follow-up message from its checkpoint."""
        from extractor.checkpoint import CheckpointStore
        from extractor.socrata import SocrataExtraction

        return SocrataExtraction(
            self.http,
            self.settings.socrata_url,
            self.ports.credentials.get(self.settings.socrata_app_token_param),
            self.lander,
            CheckpointStore(self.ports.lake, self.ports.state),
            self.queues.send,
            max_pages_per_invocation=self.settings.socrata_pages_per_invocation,
        )

    # -- the batch ----------------------------------------------------------------------------------------------
    @staticmethod
    def requests_of(event: dict[str, Any]) -> list[ExtractRequest]:
        """The valid requests of a batch (an invalid one is dead-lettered with its reason when processed)."""
        found = []
        for raw in event.get("Records", []):
            try:
                found.append(ExtractRecord.model_validate(raw).body)
            except ValidationError:
                continue
        return found

    @property
    def run_ids(self) -> str | None:
        """The batch's run ids, for the correlation id of the logs before any record (None: no valid request)."""
        return ",".join(sorted({r.run_id for r in self.requests})) or None

    def prefetch(self) -> None:
        """Fetch the batch's BLS API series in as few queries as the limits allow, leaving out the requests whose
        unit of work is already done (completed redeliveries)."""
        wanted = [r for r in self.requests if r.source is Source.BLS_API and not self.unit.already_done(r)]
        if not wanted:
            return
        try:
            sent = self.bls.prefetch(wanted)
        except ExtractionError as exc:
            logger.warning("BLS prefetch failed; each BLS record will fail on its own", extra={"error": str(exc)})
            return
        logger.info("BLS API prefetch", extra={"series": len(wanted), "queries": sent})

    # -- one record ---------------------------------------------------------------------------------------------
    def last_receive(self, record: SQSRecord) -> bool:
        """Whether SQS would move this message to the DLQ if it failed now."""
        return is_last_receive(receive_count(record), self.settings.extract_max_receive_count)

    def handle(self, record: SQSRecord, request: ExtractRequest) -> dict[str, Any]:
        """Run one record's unit of work, unless the records before it left too little time to start it.

        Returns
        -------
        The unit's outcome, or ``{"outcome": "postponed", ...}`` when the record went back to the queue.

        Raises
        ------
        ExtractionError, IdempotencyAlreadyInProgressError, LakeError, StateError, PublishError, QueueError
            For the failure policy (``extractor.failures``) to act on.
        """
        budget = current_budget()
        if self.started and budget is not None and budget.remaining() < MIN_START_SECONDS:
            return self.postpone(record, request)  # the records before it used the time
        self.started += 1
        outcome = self.unit.run(request=request, invocation=self, final=self.last_receive(record))
        logger.debug("request done", extra={"outcome": outcome.get("outcome")})
        return outcome

    def extract(self, request: ExtractRequest, keep_bad: bool = False) -> dict[str, Any]:
        """Fetch one request from its source and land it (or record it unchanged).

        ``keep_bad`` (the request's last receive): a BLS API, DataUSA or Socrata payload that fails the extractor's
        checks is landed as it is, for the transformer to quarantine, rather than failing the request once more.
        """
        if request.source is Source.BLS_BULK:
            from extractor.bls_bulk import BulkMirror

            mirror = BulkMirror(self.http, self.settings.bls_bulk_url, self.ports.lake, self.ports.state, self.lander)
            return mirror.sync(request, keep_bad=keep_bad)
        if request.source is Source.BLS_API:
            fetched = self.bls.fetched_for(request, keep_bad=keep_bad)
        elif request.source is Source.DATAUSA:
            from extractor.snapshots import fetch_datausa

            fetched = fetch_datausa(self.http, self.settings.datausa_url, request, keep_bad=keep_bad)
        else:
            return self.socrata().run(
                request, request.params.page_size or self.settings.socrata_page_size, keep_bad=keep_bad
            )
        try:
            return self.lander.land(fetched)
        finally:
            fetched.close()

    # -- what the failure policy does ---------------------------------------------------------------------------
    def postpone(self, record: SQSRecord, request: ExtractRequest) -> dict:
        """Send a record the invocation has no time left for back to the ExtractQueue, as it is.

        Raises
        ------
        QueueError
            When SQS refuses: the record then fails and returns after its visibility timeout.
        """
        self.queues.send_body(record.body)
        telemetry.count("RecordsPostponed", source=request.source.value)
        logger.info("record postponed: too little time left in this invocation", extra={"dataset": request.dataset})
        return {"outcome": "postponed", "source": request.source.value, "dataset": request.dataset}

    def defer(self, record: SQSRecord, seconds: int) -> None:
        """Keep a message invisible for ``seconds``.

        Raises
        ------
        QueueError
            When SQS refuses; the message then returns after the queue's own visibility timeout.
        """
        self.queues.defer(record.event_source_arn, record.receipt_handle, seconds)

    def dead_letter(
        self,
        record: SQSRecord,
        request: ExtractRequest | None,
        error: ExtractionError | str,
        error_type: str | None = None,
    ) -> dict:
        """Send the original body to the ExtractDLQ with its reason; tell people (stage.failed).

        Raises
        ------
        QueueError, PublishError
            When the DLQ or the topic refuses: the record then fails, so the message is not lost.
        """
        reason = str(error)
        if error_type is None:
            error_type = error.reason_code if isinstance(error, ExtractionError) else "invalid_message"
        attributes = {
            "original_message_id": record.message_id,
            "receive_count": record.attributes.approximate_receive_count,
        }
        if request is not None:
            attributes.update(source=request.source.value, dataset=request.dataset, run_id=request.run_id)
        self.queues.dead_letter(record.body, reason, error_type, attributes)
        if request is not None:
            self.ports.publish(
                StageFailed(
                    run_id=request.run_id,
                    source=request.source,
                    dataset=request.dataset,
                    stage="extractor",
                    reason=reason,
                    error_type=error_type,
                )
            )
        telemetry.count("ExtractFailures", reason=error_type)
        logger.error("request dead-lettered", extra={"reason": reason, "error_type": error_type})
        return {"outcome": "dead_lettered", "reason": reason, "error_type": error_type}


def receive_count(record: SQSRecord) -> int:
    return int(record.attributes.approximate_receive_count or 1)
