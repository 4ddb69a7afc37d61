"""BLS Public API v2 connector: one SQS batch's series coalesced into as few POSTs as the limits allow.

The handler calls ``prefetch`` with every BLS request of the batch before the records are processed; each
record then takes its own series from the answers (``fetched_for``), so messages, retries and DLQ entries stay
one per series while the API sees ceil(N/50) queries (ceil(N/25) without a key) per year window.

Each response body is kept exactly as received and stored once, at a key of its own
(``landing/bls_api/_responses/...``), by the first of its series whose content changed; every series' landing is
its own manifest, whose parts point at the response(s) it came from (one per year window) and name the series to
select. A batch whose series are all unchanged writes nothing.

A query that fails (HTTP errors after the retries, a non-JSON body, ``REQUEST_NOT_PROCESSED``) fails exactly the
series it carried, when their records are processed. So does a response that echoes the registration key: its
body cannot be stored as received without storing the key, and it is never rewritten, so its series are
dead-lettered with the reason (``SecretInResponse``). A record whose series was not prefetched (for instance a
redelivery that was in progress elsewhere during the prefetch) is fetched on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from aws_lambda_powertools import Logger

from datalake.contracts import ExtractRequest
from datalake.layout import bls_api_response_key
from datalake.observability import redact
from extractor.domain import (
    STATUS_INVALID_PARAMETERS,
    STATUS_NOT_PROCESSED,
    STATUS_SUCCEEDED,
    BlsLimits,
    BlsQuery,
    BlsResponse,
    SeriesWant,
    bls_limits,
    echoes_secret,
    merge_series,
    messages_about,
    parse_bls_response,
    plan_bls_queries,
    requested_years,
    series_content_sha256,
    series_does_not_exist,
    series_observations,
    series_years,
    sha256_hex,
    year_windows,
)
from extractor.errors import (
    BadPayload,
    Deferred,
    ExtractionError,
    InvalidRequest,
    SecretInResponse,
    SeriesNotFound,
    SourceUnavailable,
    bad_payload_kept,
)
from extractor.http import HttpClient, redacted_url
from extractor.landing import Fetched, FetchedPart, SharedObject
from extractor.proof import now_utc
from extractor.telemetry import telemetry

logger = Logger(child=True)


@dataclass
class _WindowAnswer:
    series: dict[str, Any] | None = None  # the series object as BLS sent it (for change detection and counts)
    messages: list[str] = field(default_factory=list)
    response: SharedObject | None = None  # the response body it came from, stored as received when needed
    error: ExtractionError | None = None


class BlsApiFetcher:
    """Coalesced BLS API queries for one invocation.

    Parameters
    ----------
    http: the HTTP client (session with retries).
    url: the API endpoint (settings.bls_api_url).
    api_key: the registration key, or None for keyless limits.
    today: the date that ends default windows.
    window_years: the default window (settings.daily_window_years).
    """

    def __init__(self, http: HttpClient, url: str, api_key: str | None, today: date, window_years: int) -> None:
        self.http = http
        self.url = url
        self.api_key = api_key
        self.today = today
        self.window_years = window_years
        self.limits: BlsLimits = bls_limits(api_key is not None)
        self.queries_sent = 0
        self.fetched_at = now_utc()  # the batch's queries start now: the order of its landings
        self._answers: dict[tuple[SeriesWant, int, int], _WindowAnswer] = {}

    def want(self, request: ExtractRequest) -> SeriesWant:
        """The series and years a request asks for. The catalog option needs a key (it is a v2 feature).

        Raises
        ------
        InvalidRequest
            When its year range is impossible.
        """
        start, end = requested_years(request.params, self.today, self.window_years)
        return SeriesWant(request.dataset, start, end, catalog=request.params.catalog and self.api_key is not None)

    def _windows(self, want: SeriesWant) -> list[tuple[int, int]]:
        return year_windows(want.start_year, want.end_year, self.limits.years_per_query)

    def _is_fetched(self, want: SeriesWant) -> bool:
        return all((want, lo, hi) in self._answers for lo, hi in self._windows(want))

    def prefetch(self, requests: Iterable[ExtractRequest]) -> int:
        """Query the API for every series of the batch at once; returns the number of POSTs sent."""
        wants: list[SeriesWant] = []
        moment: datetime | None = None
        for request in requests:
            try:
                wants.append(self.want(request))
            except InvalidRequest:
                continue  # its record fails with the reason when it is processed
            if moment is None:  # the responses' keys take the batch's first request time (deterministic)
                moment = request.requested_at
        pending = [w for w in wants if not self._is_fetched(w)]
        queries = plan_bls_queries(pending, self.limits)
        for query in queries:
            assert moment is not None  # a query comes from a valid request
            self._run(query, moment)
        if queries:
            logger.info(
                "BLS API batch fetched",
                extra={
                    "series": len({w.series_id for w in pending}),
                    "queries": len(queries),
                    "limits": f"{self.limits.series_per_query} series / {self.limits.years_per_query} years",
                },
            )
        return len(queries)

    def _run(self, query: BlsQuery, moment: datetime) -> None:
        """Send one query and file its answer under every (series, window) it carried."""
        payload = query.payload()
        if self.api_key:
            payload["registrationkey"] = self.api_key
        self.queries_sent += 1
        telemetry.count("ApiCalls", source="bls_api")
        body: bytes | None = None
        try:
            download = self.http.fetch("POST", self.url, json_body=payload)
            try:
                if download.retries:
                    telemetry.count("HttpRetries", download.retries, source="bls_api")
                if not download.ok:
                    raise SourceUnavailable(f"BLS API answered HTTP {download.status} after retries")
                body = download.read()
            finally:
                download.close()
            response = parse_bls_response(body)
            answers = self._split(query, response)
            self._keep_body(query, response, body, moment, answers)
        except ExtractionError as exc:
            logger.warning(
                "BLS API query failed",
                extra={
                    "series": len(query.series_ids),
                    "years": f"{query.start_year}-{query.end_year}",
                    "error": str(exc),
                },
            )
            # an unparseable body is kept aside: a series on its last receive lands it for quarantine
            kept = self._bad_body(query, body, moment) if isinstance(exc, BadPayload) and body is not None else None
            answers = {sid: _WindowAnswer(error=exc, response=kept) for sid in query.series_ids}
        for want in query.wants():
            self._answers[(want, query.start_year, query.end_year)] = answers[want.series_id]

    def _keep_body(
        self,
        query: BlsQuery,
        response: BlsResponse,
        body: bytes,
        moment: datetime,
        answers: dict[str, _WindowAnswer],
    ) -> None:
        """Attach the body, exactly as received, to the series it answers, to be stored once if one changed.

        A body that echoes the registration key is neither stored nor rewritten: its series fail permanently.
        """
        served = [a for a in answers.values() if a.error is None]
        if not served:
            return
        if echoes_secret(body, self.api_key):
            error = SecretInResponse(
                f"the BLS API response to a query of {len(query.series_ids)} series "
                f"({query.start_year}-{query.end_year}) echoes the registration key; the body was not stored "
                "(landing keeps bodies exactly as received, and never a key)"
            )
            logger.error(
                "BLS API response echoes the registration key; not stored",
                extra={"series": len(query.series_ids), "years": f"{query.start_year}-{query.end_year}"},
            )
            for answer in served:
                answer.series, answer.error = None, error
            return
        records = sum(series_observations(s) for s in response.series.values())
        stored = self._response_object(query, body, moment, records)
        for answer in served:
            answer.response = stored

    def _response_object(
        self, query: BlsQuery, body: bytes, moment: datetime, records: int, content_type: str = "application/json"
    ) -> SharedObject:
        """A response body exactly as received, to be stored once under its own key (named by its hash)."""
        digest = sha256_hex(body)
        source_url = f"{redacted_url(self.url)}#startyear={query.start_year}&endyear={query.end_year}"
        if query.catalog:
            source_url += "&catalog=true"
        return SharedObject(
            key=bls_api_response_key(moment, digest),
            body=body,
            sha256=digest,
            records=records,
            source_url=source_url,
            content_type=content_type,
        )

    def _bad_body(self, query: BlsQuery, body: bytes, moment: datetime) -> SharedObject | None:
        """A body that is not a BLS answer, exactly as received, or None when it echoes the registration key."""
        if echoes_secret(body, self.api_key):
            return None
        return self._response_object(query, body, moment, 0, "application/octet-stream")

    def _series_url(self, want: SeriesWant) -> str:
        return f"{redacted_url(self.url)}#seriesid={want.series_id}&startyear={want.start_year}&endyear={want.end_year}"

    @staticmethod
    def _split(query: BlsQuery, response: BlsResponse) -> dict[str, _WindowAnswer]:
        """Each series' share of one answer. Messages are scrubbed: BLS echoes a rejected key in them."""
        messages = [redact(m) for m in response.messages]
        summary = "; ".join(messages) or response.status
        error: ExtractionError | None = None
        if response.status == STATUS_NOT_PROCESSED:
            error = Deferred(f"BLS did not process the query: {summary}")
        elif response.status == STATUS_INVALID_PARAMETERS:
            error = InvalidRequest(f"BLS refused the query as invalid: {summary}")
        elif response.status != STATUS_SUCCEEDED:
            error = SourceUnavailable(f"BLS answered {response.status}: {summary}")
        if error is not None:
            return {sid: _WindowAnswer(error=error, messages=messages) for sid in query.series_ids}
        answers = {}
        for sid in query.series_ids:
            about = messages_about(sid, messages)
            missing = series_does_not_exist(sid, about)
            if missing:
                answers[sid] = _WindowAnswer(error=SeriesNotFound(missing), messages=about)
            elif sid not in response.series:
                answers[sid] = _WindowAnswer(
                    error=SourceUnavailable(f"BLS answered without series {sid} and without saying why"),
                    messages=about,
                )
            else:
                answers[sid] = _WindowAnswer(series=response.series[sid], messages=about)
        return answers

    def fetched_for(self, request: ExtractRequest, keep_bad: bool = False) -> Fetched:
        """The landing of one series, from the batch's answers (fetched alone if it was not prefetched).

        Its parts are the responses it came from, one per year window, each naming the series to select; its
        content hash is the series' (merged across windows), so an unchanged series writes nothing.

        ``keep_bad`` (the request's last receive): when the only failures are responses that are not BLS answers
        (HTML with 200, truncated JSON), they are landed as received beside the good windows, with the reason as a
        warning, for the transformer to quarantine, instead of raising BadPayload.

        Raises
        ------
        SeriesNotFound
            When BLS says the series does not exist (permanent).
        SecretInResponse
            When a response that carries the series echoes the registration key (permanent, nothing stored).
        Deferred
            When BLS did not process the query (daily threshold).
        InvalidRequest, SourceUnavailable, BadPayload, TimeBudgetExceeded
            As the query that carried the series failed.
        """
        want = self.want(request)
        if not self._is_fetched(want):
            self.prefetch([request])
        answers = [self._answers[(want, lo, hi)] for lo, hi in self._windows(want)]
        for kind in (SeriesNotFound, SecretInResponse, Deferred, InvalidRequest):
            for answer in answers:
                if isinstance(answer.error, kind):
                    raise answer.error
        failed = [a for a in answers if a.error is not None]
        if keep_bad and failed and all(isinstance(a.error, BadPayload) and a.response for a in failed):
            return self._bad_landing(request, want, answers)
        for answer in failed:
            raise answer.error  # type: ignore[misc]
        windows = [(a.series, a.response) for a in answers if a.series is not None and a.response is not None]
        if len(windows) != len(answers):  # every answer without an error has both
            raise SourceUnavailable(f"BLS answered series {want.series_id} incompletely")
        series = merge_series([s for s, _ in windows])
        warnings = list(dict.fromkeys(m for a in answers for m in a.messages))
        if request.params.catalog and self.api_key is None:
            warnings.append("catalog information needs a BLS API key (v2); fetched without it")
        source_url = self._series_url(want)
        if warnings:
            logger.info("BLS warnings", extra={"series_id": want.series_id, "warnings": warnings[:20]})
        years, outside = series_years(series, want.start_year, want.end_year)
        if outside:
            raise BadPayload(
                f"BLS answered series {want.series_id} with years outside the {want.start_year}-{want.end_year} "
                f"asked for: {', '.join(map(str, outside[:5]))}"
            )
        return Fetched(
            request=request,
            source_url=source_url,
            content_sha256=series_content_sha256(series),
            parts=[
                FetchedPart.of_shared(response, "data", series_observations(part), want.series_id)
                for part, response in windows
            ],
            warnings=warnings,
            fetched_at=self.fetched_at,
            measures={"years": years, "window": [want.start_year, want.end_year]},
        )

    def _bad_landing(self, request: ExtractRequest, want: SeriesWant, answers: list[_WindowAnswer]) -> Fetched:
        """The series' landing with its unparseable responses as received (see ``fetched_for``'s ``keep_bad``)."""
        parts, warnings = [], []
        for answer in answers:
            assert answer.response is not None  # an answer is a good window, or a bad body kept aside
            records = series_observations(answer.series) if answer.series is not None else None
            parts.append(FetchedPart.of_shared(answer.response, "data", records, want.series_id))
            if isinstance(answer.error, BadPayload):
                warnings.append(bad_payload_kept(answer.error, f"series {want.series_id}"))
        digests = ",".join(p.sha256 for p in parts)
        return Fetched(
            request=request,
            source_url=self._series_url(want),
            content_sha256=sha256_hex(f"unparsed:{want.series_id}:{digests}".encode()),
            parts=parts,
            warnings=list(dict.fromkeys(warnings)),
        )
