"""The extractor's service layer: the collaborators of one invocation, and one request from source to landing.

Connectors are imported on first use, so the handler's cold import stays light (no HTTP stack until a source
is called).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from datalake.contracts import ExtractRequest, Source, StageFailed
from datalake.events import publish_event
from datalake.lake import LakeStore
from datalake.records import ExtractRecord
from datalake.settings import ExtractorSettings
from datalake.state import StateStore
from extractor.credentials import CredentialStore
from extractor.errors import ExtractionError
from extractor.landing import Lander
from extractor.queues import ExtractQueues
from extractor.telemetry import telemetry

if TYPE_CHECKING:
    import requests

    from extractor.bls_api import BlsApiFetcher
    from extractor.http import HttpClient

logger = Logger(child=True)

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

    def prefetch(self, requests: list[ExtractRequest], already_done: Callable[[ExtractRequest], bool]) -> None:
        """Fetch the batch's BLS API series in as few queries as the limits allow, leaving out the requests
        ``already_done`` (completed redeliveries)."""
        wanted = [r for r in requests if r.source is Source.BLS_API and not already_done(r)]
        if not wanted:
            return
        try:
            sent = self.bls.prefetch(wanted)
        except ExtractionError as exc:
            logger.warning("BLS prefetch failed; each BLS record will fail on its own", extra={"error": str(exc)})
            return
        logger.info("BLS API prefetch", extra={"series": len(wanted), "queries": sent})

    # -- one request --------------------------------------------------------------------------------------------
    def extract(self, request: ExtractRequest, keep_bad: bool = False) -> dict[str, Any]:
        """Fetch one request from its source and land it (or record it unchanged).

        ``keep_bad`` (the request's last receive): a BLS API, DataUSA or Socrata payload that fails the extractor's
        checks is landed as it is, for the transformer to quarantine, rather than failing the request once more.
        """
        if request.source is Source.BLS_BULK:
            from extractor.bls_bulk import BulkMirror

            mirror = BulkMirror(self.http, self.settings.bls_bulk_url, self.lake, self.state, self.lander)
            return mirror.sync(request, keep_bad=keep_bad)
        if request.source is Source.BLS_API:
            fetched = self.bls.fetched_for(request, keep_bad=keep_bad)
        elif request.source is Source.DATAUSA:
            from extractor.snapshots import fetch_datausa

            fetched = fetch_datausa(self.http, self.settings.datausa_url, request, keep_bad=keep_bad)
        else:
            from extractor.snapshots import fetch_socrata

            fetched = fetch_socrata(
                self.http,
                self.settings.socrata_url,
                request,
                request.params.page_size or self.settings.socrata_page_size,
                credentials.get(self.settings.socrata_app_token_param),
                self.settings.max_payload_bytes,
                keep_bad=keep_bad,
            )
        try:
            return self.lander.land(fetched)
        finally:
            fetched.close()

    def dead_letter(
        self,
        record: SQSRecord,
        request: ExtractRequest | None,
        error: ExtractionError | str,
        error_type: str | None = None,
    ) -> dict:
        """Send the original body to the ExtractDLQ with its reason; tell people (stage.failed)."""
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
