"""Fault injection for the local runtime: sources, queues and S3 that misbehave on purpose.

A fault plan (JSON: ``python -m localrun --faults FILE``; ``FaultPlan.from_dict`` in tests) scripts three layers:

- **The fault source** (``source``): a hook in the replay server's chain (``localrun.replay``), so the extractor
  meets a misbehaving source over real HTTP on 127.0.0.1: a timeout, a connection reset, 500, 503, 429 with
  ``Retry-After``, a truncated body (the connection breaks off before ``Content-Length`` bytes; or, as
  ``truncated_json``, a complete response whose payload is cut), HTML served with 200, the BLS
  ``REQUEST_NOT_PROCESSED``, schema drift, and a slow drip. Each fault is scripted per endpoint and/or dataset,
  and clears after ``attempts`` matching requests (or never).
- **Delivery faults** (``delivery``) around the runner: every message of a queue delivered ``copies`` times (the
  copies are new messages with the same body, as S3 and SNS duplicates are), and poison messages put into a queue
  beside the real ones before the run starts.
- **AWS faults** (``aws``) through botocore's event system, on the functions' shared clients
  (``datalake.aws.client``): an S3 operation answered with an error status from ``before-send`` (botocore's own
  retries then run, as against a failing S3), or the function's process "crashing" just before or just after an
  S3 call. A crash is a ``BaseException`` nothing in the handler catches; the runner sees the invocation die and
  fails its whole batch, as Lambda does when the process dies.

Local speed: while a plan is installed, the extractor's HTTP backoff and read timeout are shortened (``http``):
with the production values one persistent fault costs minutes. The code paths (urllib3's ``Retry``, the
``Retry-After`` handling, the timeouts) are the production ones.

The accounting: ``audit_run`` reads the lake folder a local run leaves and says where every catalog entry of a
run ended (landed, unchanged, dead-lettered with its reason, or deferred to the next run) and where every landed
manifest ended (staged, quarantined, or in the TransformDLQ). Anything else is lost. ``mart_differences`` compares
the contents of two lakes' marts (values, not timestamps or bytes).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, unquote_plus, urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from localrun.replay import BLS_BULK_PATH, ENDPOINTS, ReplayRequest, ReplayResponse, ReplayServer

if TYPE_CHECKING:
    from localrun.runner import Runner

SourceFaultKind = Literal[
    "timeout",
    "reset",
    "http_500",
    "http_503",
    "http_429",
    "truncated",
    "truncated_json",
    "html_200",
    "not_processed",
    "schema_drift",
    "slow_drip",
    "cut_body",
    "listing_omits",
    "page_repeated",
    "page_skipped",
    "page_empty",
    "page_short",
    "series_missing",
    "year_missing",
]
PAGE_FAULTS = ("page_repeated", "page_skipped", "page_empty", "page_short")
# Faults that need the answer of one endpoint in particular.
ENDPOINT_OF_KIND = {
    "not_processed": "bls_api",
    "listing_omits": "bls_bulk_listing",
    "series_missing": "bls_api",
    "year_missing": "datausa",
    **dict.fromkeys(PAGE_FAULTS, "socrata_rows"),
}
PIPELINE_QUEUES = ("ExtractQueue", "TransformQueue", "ModelQueue", "NotifyQueue")
DRIFTABLE = ("bls_api", "datausa", "socrata_rows", "socrata_views", "bls_bulk_file")

MAINTENANCE_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Scheduled maintenance</title></head>\n<body><h1>We'll be back soon</h1>"
    b"<p>The service is undergoing scheduled maintenance. Please try again later.</p></body></html>\n"
)
NOT_PROCESSED = {
    "status": "REQUEST_NOT_PROCESSED",
    "responseTime": 20,
    "message": [
        "Request could not be serviced, as the daily threshold for total number of requests allocated to the user "
        "has been reached."
    ],
    "Results": {},
}


# ---------------------------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------------------------


class _Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceFault(_Plan):
    """One scripted source fault. It applies to the requests matching ``endpoint`` and ``dataset`` (both optional),
    the first ``attempts`` of them (every one when None)."""

    kind: SourceFaultKind
    endpoint: str | None = None
    dataset: str | None = None  # a series id, a Socrata id, "population", a bulk survey or a bulk file name
    attempts: int | None = Field(default=None, ge=1)
    retry_after: int = Field(default=1, ge=0, le=3600)  # http_429
    delay_seconds: float = Field(default=5.0, gt=0, le=600)  # timeout: longer than the client's read timeout
    drip_bytes_per_second: int = Field(default=2048, ge=10)  # slow_drip
    keep_fraction: float = Field(default=0.5, gt=0, lt=1)  # truncated, truncated_json, cut_body
    at_line_boundary: bool = False  # cut_body: cut after the last whole line before keep_fraction
    files: list[str] = []  # listing_omits: the file names the listing leaves out
    page: int | None = Field(default=None, ge=0)  # page_*: the 0-based page (offset // limit) it answers wrong
    year: int | None = None  # year_missing: the year the answer leaves out

    @model_validator(mode="after")
    def _applies_somewhere(self) -> SourceFault:
        if self.endpoint is not None and self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint {self.endpoint!r} is not one of {', '.join(ENDPOINTS)}")
        wanted = ENDPOINT_OF_KIND.get(self.kind)
        if wanted is not None and self.endpoint != wanted:
            raise ValueError(f"{self.kind} is an answer of {wanted}: set endpoint to {wanted}")
        if self.kind == "listing_omits" and not self.files:
            raise ValueError("listing_omits needs files: the names the listing leaves out")
        if self.kind in PAGE_FAULTS and self.page is None:
            raise ValueError(f"{self.kind} needs page: the 0-based page index it answers wrong")
        if self.kind == "page_repeated" and self.page == 0:
            raise ValueError("page_repeated repeats the page before: page must be 1 or more")
        if self.kind == "year_missing" and self.year is None:
            raise ValueError("year_missing needs year: the year the answer leaves out")
        if self.kind == "schema_drift" and self.endpoint not in DRIFTABLE:
            raise ValueError(f"schema_drift needs an endpoint among {', '.join(DRIFTABLE)}")
        return self

    def describe(self) -> str:
        target = "/".join(t for t in (self.endpoint, self.dataset) if t) or "every request"
        if self.page is not None:
            target += f" page {self.page}"
        clears = "never clears" if self.attempts is None else f"clears after {self.attempts}"
        return f"{self.kind} on {target} ({clears})"


class DeliveryFault(_Plan):
    """``duplicate``: each message of the queue is delivered ``copies`` times in all. ``poison``: ``body`` (or one
    that breaks the queue's contract) is put into the queue before the run starts."""

    kind: Literal["duplicate", "poison"]
    queue: Literal["ExtractQueue", "TransformQueue", "ModelQueue", "NotifyQueue"]
    copies: int = Field(default=3, ge=2, le=10)
    body: str | None = None


class AwsFault(_Plan):
    """``error``: the call is answered with ``status``/``code`` (before it is sent; botocore retries as it would).
    ``crash``: the function's process dies just ``before`` the call, or just ``after`` it succeeded.
    ``key`` is an fnmatch pattern over the S3 key; ``times`` is how many matching calls (every one when None)."""

    kind: Literal["error", "crash"]
    service: Literal["s3"] = "s3"
    operation: str = Field(default="PutObject", pattern=r"^[A-Z][A-Za-z]+$")
    key: str = "*"
    status: int = Field(default=500, ge=400, le=599)
    code: str = "InternalError"
    when: Literal["before", "after"] = "before"
    times: int | None = Field(default=1, ge=1)

    def describe(self) -> str:
        what = f"{self.status} {self.code}" if self.kind == "error" else f"crash {self.when}"
        times = "every call" if self.times is None else f"{self.times} call(s)"
        return f"{self.service} {self.operation} {self.key}: {what}, {times}"


class HttpTuning(_Plan):
    """The extractor's HTTP timings while a plan is installed (production: backoff 0.5, jitter 0.5, read 60 s)."""

    backoff_factor: float = Field(default=0.05, ge=0)
    backoff_jitter: float = Field(default=0.05, ge=0)
    read_timeout: float = Field(default=2.0, gt=0)


class PlanDocument(_Plan):
    name: str = "faults"
    http: HttpTuning = HttpTuning()
    source: list[SourceFault] = []
    delivery: list[DeliveryFault] = []
    aws: list[AwsFault] = []
    record_writes: bool = False  # count every S3 write request per key (the run record's faults.writes)
    # Socrata's page size while the plan runs, so page faults can be rehearsed on a small dataset
    socrata_page_size: int | None = Field(default=None, ge=1, le=50_000)


# ---------------------------------------------------------------------------------------------------------------
# The fault source
# ---------------------------------------------------------------------------------------------------------------


def datasets_of(request: ReplayRequest) -> set[str]:
    """The series, datasets, surveys or files a replay request is about."""
    if request.endpoint == "bls_api":
        try:
            payload = request.json()
        except ValueError:
            return set()
        series = payload.get("seriesid") if isinstance(payload, dict) else None
        return {str(s).strip().upper() for s in series} if isinstance(series, list) else set()
    if request.endpoint in ("bls_bulk_listing", "bls_bulk_file"):
        return {p for p in request.path[len(BLS_BULK_PATH) :].split("/") if p}
    if request.endpoint == "datausa":
        return {"population"}
    if request.endpoint in ("socrata_rows", "socrata_count", "socrata_views"):
        name = request.path.rsplit("/", 1)[-1]
        return {name.removesuffix(".json")}
    return set()


def _rename(row: Any, old: str, new: str) -> None:
    if isinstance(row, dict) and old in row:
        row[new] = row.pop(old)


def _drift_bulk_file(body: bytes) -> bytes:
    header, newline, rest = body.partition(b"\n")
    renamed = header.replace(b"series_id", b"seriesid", 1)
    if renamed == header:  # a mapping file: its first column gets a new name
        first, tab, others = header.partition(b"\t")
        renamed = first.rstrip() + b"_v2" + tab + others
    return renamed + newline + rest


def _drift_bls_api(document: Any) -> None:
    for series in (document.get("Results") or {}).get("series") or []:
        for item in series.get("data") or []:
            _rename(item, "value", "observation_value")


def _drift_datausa(document: Any) -> None:
    for row in document.get("data") or []:
        _rename(row, "Population", "Total Population")
    if isinstance(document.get("columns"), list):
        document["columns"] = ["Total Population" if c == "Population" else c for c in document["columns"]]


def _drift_socrata_rows(document: Any) -> None:
    renamed = next(iter(document[0]), None) if document else None
    for row in document:
        _rename(row, str(renamed), f"{renamed}_v2")


def _drift_socrata_views(document: Any) -> None:
    columns = document.get("columns") or []
    if columns:
        columns[0]["fieldName"] = f"{columns[0].get('fieldName')}_v2"


_JSON_DRIFTS: dict[str, Callable[[Any], None]] = {
    "bls_api": _drift_bls_api,
    "datausa": _drift_datausa,
    "socrata_rows": _drift_socrata_rows,
    "socrata_views": _drift_socrata_views,
}


def drifted(endpoint: str, body: bytes) -> bytes:
    """The same answer with its schema changed the way sources change it: a field or column renamed (the BLS
    observations' ``value``, DataUSA's ``Population``, a Socrata field, a bulk file's header).

    Raises
    ------
    ValueError
        When the endpoint has no drift defined.
    """
    if endpoint == "bls_bulk_file":
        return _drift_bulk_file(body)
    if endpoint not in _JSON_DRIFTS:
        raise ValueError(f"no schema drift is defined for {endpoint}")
    document = json.loads(body)
    _JSON_DRIFTS[endpoint](document)
    return json.dumps(document, ensure_ascii=False).encode()


def page_of(request: ReplayRequest) -> int | None:
    """The 0-based page a Socrata rows request asks for (``$offset // $limit``)."""
    if request.endpoint != "socrata_rows":
        return None
    try:
        return int(request.query.get("$offset", "0")) // max(1, int(request.query.get("$limit", "1000")))
    except ValueError:
        return None


def _cut(fault: SourceFault, body: bytes) -> bytes:
    """A body cut short, sent with a Content-Length that matches it (the server believes it is whole)."""
    end = int(len(body) * fault.keep_fraction)
    if fault.at_line_boundary:
        end = body.rfind(b"\n", 0, end) + 1
    return body[:end]


def _omit_from_listing(fault: SourceFault, body: bytes) -> bytes:
    """The BLS listing without some of its entries (each entry ends with ``<br>``); the files stay downloadable."""
    entries = body.split(b"<br>")
    omitted = {f">{name}</A>".encode().lower() for name in fault.files}
    return b"<br>".join(e for e in entries if not any(o in e.lower() for o in omitted))


def _half_page(fault: SourceFault, body: bytes) -> bytes:
    rows = json.loads(body)
    return json.dumps(rows[: len(rows) // 2], ensure_ascii=False).encode()


def _without_series(fault: SourceFault, body: bytes) -> bytes:
    """A BLS API answer that says nothing of one requested series (``dataset``, else the first one)."""
    document = json.loads(body)
    series = (document.get("Results") or {}).get("series") or []
    if series:
        gone = fault.dataset or series[0].get("seriesID")
        document["Results"]["series"] = [s for s in series if s.get("seriesID") != gone]
    return json.dumps(document).encode()


def _without_year(fault: SourceFault, body: bytes) -> bytes:
    document = json.loads(body)
    rows = document.get("data") or []
    document["data"] = [r for r in rows if str(r.get("Year", r.get("ID Year"))) != str(fault.year)]
    return json.dumps(document, ensure_ascii=False).encode()


_REWRITES: dict[str, Callable[[SourceFault, bytes], bytes]] = {
    "cut_body": _cut,
    "listing_omits": _omit_from_listing,
    "page_empty": lambda fault, body: b"[]",
    "page_short": _half_page,
    "series_missing": _without_series,
    "year_missing": _without_year,
}


# Faults that answer on their own, without asking the replay.
_ANSWERS: dict[str, Callable[[SourceFault], ReplayResponse]] = {
    "reset": lambda fault: ReplayResponse(reset=True),
    "http_500": lambda fault: ReplayResponse.json_body({"error": True, "message": "Internal Server Error"}, status=500),
    "http_503": lambda fault: ReplayResponse(
        status=503, body=b"<html><body><h1>503 Service Unavailable</h1></body></html>", content_type="text/html"
    ),
    "http_429": lambda fault: ReplayResponse.json_body(
        {"error": True, "message": "Too Many Requests"}, status=429, headers={"Retry-After": str(fault.retry_after)}
    ),
    "html_200": lambda fault: ReplayResponse(status=200, body=MAINTENANCE_PAGE, content_type="text/html"),
    "not_processed": lambda fault: ReplayResponse.json_body(NOT_PROCESSED),
}


@dataclass
class FaultTally:
    matched: int = 0  # requests the fault applied to (while active or after it cleared)
    faulted: int = 0  # requests it answered with the fault


class FaultSource:
    """The replay hook that injects the scripted faults. Thread-safe: the replay server answers in threads."""

    def __init__(self, faults: list[SourceFault], replay: ReplayServer | None = None) -> None:
        self.replay = replay  # page faults answer with another page of the same dataset
        self.faults = list(faults)
        self.tallies = [FaultTally() for _ in self.faults]
        self.log: list[tuple[int, str, int, bool]] = []  # (fault index, endpoint, request number, faulted)
        self._lock = threading.Lock()

    @staticmethod
    def matches(fault: SourceFault, request: ReplayRequest) -> bool:
        if fault.endpoint is not None and request.endpoint != fault.endpoint:
            return False
        if fault.page is not None and page_of(request) != fault.page:
            return False
        return fault.dataset is None or fault.dataset in datasets_of(request)

    def __call__(self, request: ReplayRequest, proceed: Callable[[], ReplayResponse]) -> ReplayResponse:
        for index, fault in enumerate(self.faults):
            if not self.matches(fault, request):
                continue
            with self._lock:
                tally = self.tallies[index]
                tally.matched += 1
                active = fault.attempts is None or tally.faulted < fault.attempts
                if active:
                    tally.faulted += 1
                self.log.append((index, request.endpoint, request.number, active))
            if active:
                return self.inject(fault, request, proceed)
        return proceed()

    def inject(
        self, fault: SourceFault, request: ReplayRequest, proceed: Callable[[], ReplayResponse]
    ) -> ReplayResponse:
        """The faulty answer to one request."""
        answer_of = _ANSWERS.get(fault.kind)
        if answer_of is not None:
            return answer_of(fault)
        if fault.kind in ("page_repeated", "page_skipped"):
            return self._other_page(request, -1 if fault.kind == "page_repeated" else 1, proceed)
        answer = proceed()
        if answer.status != 200:
            return answer  # nothing to time out, cut or drift: the source answered an error of its own
        if fault.kind == "timeout":
            answer.delay_seconds = fault.delay_seconds
        elif fault.kind == "truncated":
            answer.truncate_after = int(len(answer.body) * fault.keep_fraction)
        elif fault.kind == "truncated_json":
            answer.body = answer.body[: int(len(answer.body) * fault.keep_fraction)]
        elif fault.kind == "schema_drift":
            answer.body = drifted(request.endpoint, answer.body)
        elif fault.kind == "slow_drip":
            answer.drip_bytes_per_second = fault.drip_bytes_per_second
        else:
            answer.body = _REWRITES[fault.kind](fault, answer.body)
        return answer

    def _other_page(self, request: ReplayRequest, step: int, proceed: Callable[[], ReplayResponse]) -> ReplayResponse:
        """The rows of the page ``step`` pages away, as if the source's paging slipped (repeated: -1, skipped: +1)."""
        if self.replay is None:
            return proceed()
        limit = int(request.query.get("$limit", "1000"))
        offset = max(0, int(request.query.get("$offset", "0")) + step * limit)
        moved = replace(request, query={**request.query, "$offset": str(offset)})
        return self.replay.answer_unhooked(moved)

    def report(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"fault": f.describe(), **f.model_dump(exclude_defaults=True), **vars(t)}
                for f, t in zip(self.faults, self.tallies, strict=True)
            ]


# ---------------------------------------------------------------------------------------------------------------
# AWS faults (botocore events) and crashes
# ---------------------------------------------------------------------------------------------------------------


class SimulatedCrash(BaseException):  # noqa: N818 - it stands for the process dying, not an error to handle
    """The function's process dies here. A BaseException: no ``except Exception`` in the handler stops it."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


class FunctionCrashed(RuntimeError):
    """What the runner sees of a crashed invocation: the whole batch fails, as when Lambda's process dies."""


def s3_key_of(url: str, bucket: str) -> str:
    """The object key of an S3 request URL, path-style (``/bucket/key``) or virtual-hosted."""
    path = unquote(urlsplit(url).path)
    prefix = f"/{bucket}/"
    return path[len(prefix) :] if path.startswith(prefix) else path.lstrip("/")


class _ErrorBody:
    """A raw HTTP body for botocore's AWSResponse."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_kwargs: Any) -> Any:
        yield self.body


@dataclass
class AwsFaultTally:
    fault: AwsFault
    matched: int = 0
    injected: int = 0
    keys: list[str] = field(default_factory=list)


class AwsFaults:
    """botocore event handlers on the functions' shared clients."""

    def __init__(self, faults: list[AwsFault], bucket: str) -> None:
        self.tallies = [AwsFaultTally(f) for f in faults]
        self.bucket = bucket
        self._lock = threading.Lock()

    def _take(self, tally: AwsFaultTally, key: str) -> bool:
        if not fnmatch.fnmatchcase(key, tally.fault.key):
            return False
        with self._lock:
            tally.matched += 1
            if tally.fault.times is not None and tally.injected >= tally.fault.times:
                return False
            tally.injected += 1
            tally.keys.append(key)
            return True

    def install(self, client: Any) -> None:
        events = client.meta.events
        for tally in self.tallies:
            fault = tally.fault
            suffix = f"{client.meta.service_model.service_id.hyphenize()}.{fault.operation}"
            if fault.kind == "error":
                events.register(f"before-send.{suffix}", self._error_handler(tally))
            elif fault.when == "before":
                events.register(f"before-parameter-build.{suffix}", self._crash_before(tally))
            else:
                events.register(f"before-parameter-build.{suffix}", self._remember_key)
                events.register(f"after-call.{suffix}", self._crash_after(tally))

    def _error_handler(self, tally: AwsFaultTally) -> Callable[..., Any]:
        def handler(request: Any, **_kwargs: Any) -> Any:
            from botocore.awsrequest import AWSResponse

            if not self._take(tally, s3_key_of(request.url, self.bucket)):
                return None
            body = (
                f"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>{tally.fault.code}</Code>"
                f"<Message>injected by localrun.faults</Message><RequestId>fault</RequestId></Error>"
            ).encode()
            return AWSResponse(request.url, tally.fault.status, {"Content-Type": "application/xml"}, _ErrorBody(body))

        return handler

    def _crash_before(self, tally: AwsFaultTally) -> Callable[..., None]:
        def handler(params: dict[str, Any], **_kwargs: Any) -> None:
            key = str(params.get("Key", ""))
            if self._take(tally, key):
                raise SimulatedCrash(f"crashed before {tally.fault.operation} {key}", key)

        return handler

    @staticmethod
    def _remember_key(params: dict[str, Any], context: dict[str, Any], **_kwargs: Any) -> None:
        context["localrun_fault_key"] = str(params.get("Key", ""))

    def _crash_after(self, tally: AwsFaultTally) -> Callable[..., None]:
        def handler(http_response: Any, context: dict[str, Any], **_kwargs: Any) -> None:
            key = context.get("localrun_fault_key", "")
            if 200 <= http_response.status_code < 300 and self._take(tally, key):
                raise SimulatedCrash(f"crashed after {tally.fault.operation} {key}", key)

        return handler

    def report(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"fault": t.fault.describe(), "matched": t.matched, "injected": t.injected, "keys": t.keys}
                for t in self.tallies
            ]


class S3Writes:
    """Counts the S3 write requests of the functions, per operation and key (attempts, retries included)."""

    OPERATIONS = ("PutObject", "CopyObject", "DeleteObject", "DeleteObjects")

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.counts: dict[str, Counter[str]] = {op: Counter() for op in self.OPERATIONS}
        self._lock = threading.Lock()

    def install(self, client: Any) -> None:
        for operation in self.OPERATIONS:
            client.meta.events.register(f"before-send.s3.{operation}", self._counter(operation))

    def _counter(self, operation: str) -> Callable[..., None]:
        def count(request: Any, **_kwargs: Any) -> None:
            with self._lock:
                self.counts[operation][s3_key_of(request.url, self.bucket)] += 1

        return count

    def report(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {op: dict(sorted(c.items())) for op, c in self.counts.items() if c}


def crash_tolerant(handler: Callable[[dict, Any], Any], name: str) -> Callable[[dict, Any], Any]:
    """The handler, with a simulated process death turned into what the runner sees of one: a failed invocation.

    The death is logged as Lambda's runtime logs one (an ERROR line of the invocation), with the source and
    dataset of the key being written, so the logs say why its messages come back and may end in a DLQ.
    """

    def invoke(event: dict, context: Any) -> Any:
        try:
            return handler(event, context)
        except SimulatedCrash as crash:
            from datalake.observability import logger

            pieces = crash.key.split("/")
            where = {"source": pieces[1], "dataset": pieces[2]} if len(pieces) > 2 else {}
            logger.error(
                "the function's process died (Runtime.ExitError)",
                extra={"reason": f"the process died: {crash}", "error_type": "Runtime.ExitError", **where},
            )
            raise FunctionCrashed(f"{name}: the process died ({crash})") from None

    return invoke


# ---------------------------------------------------------------------------------------------------------------
# Delivery faults
# ---------------------------------------------------------------------------------------------------------------


def poison_body(queue: str, bucket: str, topic_arn: str) -> str:
    """A message that breaks the contract of its queue, in the shape its producer would use."""
    if queue == "ExtractQueue":
        return json.dumps({"run_id": "not-a-run", "source": "bls_api", "dataset": "../../etc/passwd"})
    if queue == "TransformQueue":  # a manifest that was never written
        key = "landing/datausa/population/ingest_date=2000-01-01/20000101T000000Z-000000000000.manifest.json"
        return json.dumps(
            {
                "Records": [
                    {
                        "eventVersion": "2.1",
                        "eventSource": "aws:s3",
                        "awsRegion": "us-east-1",
                        "eventTime": "2000-01-01T00:00:00.000Z",
                        "eventName": "ObjectCreated:Put",
                        "s3": {
                            "s3SchemaVersion": "1.0",
                            "configurationId": "poison",
                            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                            "object": {"key": key, "size": 100, "eTag": "0" * 32, "sequencer": "00"},
                        },
                    }
                ]
            }
        )
    message = '{"event_type": "dataset.staged", "run_id": "poison"' if queue == "ModelQueue" else "not json {"
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "00000000-0000-4000-8000-000000000000",
            "TopicArn": topic_arn,
            "Message": message,
            "Timestamp": "2000-01-01T00:00:00.000Z",
            "SignatureVersion": "1",
            "Signature": "poison",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/poison.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {"event_type": {"Type": "String", "Value": "dataset.staged"}},
        }
    )


class DeliveryFaults:
    """Duplicates every message received from a queue, and seeds poison messages."""

    def __init__(self, faults: list[DeliveryFault]) -> None:
        self.duplicates = {f.queue: f.copies for f in faults if f.kind == "duplicate"}
        self.poisons = [f for f in faults if f.kind == "poison"]
        self.copies_sent: Counter[str] = Counter()
        self.poison_ids: dict[str, str] = {}  # message id -> queue
        self._copies: set[str] = set()
        self._copied: set[str] = set()

    def install(self, runner: Runner) -> None:
        cloud = runner.cloud
        sqs = cloud.client("sqs")
        for fault in self.poisons:
            body = fault.body or poison_body(fault.queue, cloud.ref("LakeBucket"), cloud.ref("PipelineTopic"))
            sent = sqs.send_message(QueueUrl=cloud.queue_urls[fault.queue], MessageBody=body)
            self.poison_ids[sent["MessageId"]] = fault.queue
        if not self.duplicates:
            return
        receive = runner._receive

        def receive_with_duplicates(queue: str, batch_size: int) -> list[dict[str, Any]]:
            messages = receive(queue, batch_size)
            copies = self.duplicates.get(queue)
            if copies:
                for message in messages:
                    self._duplicate(sqs, cloud.queue_urls[queue], queue, message, copies)
            return messages

        runner._receive = receive_with_duplicates  # type: ignore[method-assign]

    def _duplicate(self, sqs: Any, url: str, queue: str, message: dict[str, Any], copies: int) -> None:
        message_id = message["MessageId"]
        if message_id in self._copies or message_id in self._copied:
            return  # a copy, or an original already copied on an earlier receive
        self._copied.add(message_id)
        attributes = {
            name: {k: v for k, v in value.items() if k in ("StringValue", "BinaryValue", "DataType")}
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        for _ in range(copies - 1):
            kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": message["Body"]}
            if attributes:
                kwargs["MessageAttributes"] = attributes
            self._copies.add(sqs.send_message(**kwargs)["MessageId"])
            self.copies_sent[queue] += 1

    def report(self) -> dict[str, Any]:
        return {
            "duplicates": {q: {"copies": c, "sent": self.copies_sent[q]} for q, c in self.duplicates.items()},
            "poison": sorted(self.poison_ids.values()),
        }


# ---------------------------------------------------------------------------------------------------------------
# The plan, installed
# ---------------------------------------------------------------------------------------------------------------


class FaultPlan:
    """A fault plan: the source faults as a replay hook, the delivery and AWS faults around a runner."""

    def __init__(self, document: PlanDocument) -> None:
        self.document = document
        self.source = FaultSource(document.source)
        self.delivery = DeliveryFaults(document.delivery)
        self.aws: AwsFaults | None = None
        self.writes: S3Writes | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultPlan:
        """Raises pydantic.ValidationError on an unknown fault, endpoint or field."""
        return cls(PlanDocument.model_validate(data))

    @classmethod
    def load(cls, path: Path) -> FaultPlan:
        return cls(PlanDocument.model_validate_json(Path(path).read_text()))

    @property
    def name(self) -> str:
        return self.document.name

    def install(self, runner: Runner, replay: ReplayServer | None) -> None:
        """Put the faults in place before the run starts: the replay hook, the HTTP timings, the runner's
        deliveries and the AWS clients' event handlers."""
        if self.document.source:
            if replay is None:
                raise ValueError("source faults need the replay server (not --live)")
            self.source.replay = replay
            replay.add_hook(self.source)
        if self.document.socrata_page_size is not None:  # read by the extractor's settings at its import
            os.environ["SOCRATA_PAGE_SIZE"] = str(self.document.socrata_page_size)
        if runner.handler("ExtractorFunction") is not None:
            http = sys.modules["extractor.http"] if "extractor.http" in sys.modules else _import("extractor.http")
            tuning = self.document.http
            http.BACKOFF_FACTOR, http.BACKOFF_JITTER = tuning.backoff_factor, tuning.backoff_jitter
            http.READ_TIMEOUT = tuning.read_timeout
        self.delivery.install(runner)
        from datalake.aws import client  # the functions' shared clients (this process is their container)

        if self.document.record_writes:
            self.writes = S3Writes(runner.cloud.ref("LakeBucket"))
            self.writes.install(client("s3"))
        if self.document.aws:
            self.aws = AwsFaults(self.document.aws, runner.cloud.ref("LakeBucket"))
            self.aws.install(client("s3"))
            for logical in runner.cloud.functions:
                handler = runner.handler(logical)
                if handler is not None:
                    runner._handlers[logical] = crash_tolerant(handler, logical)

    def report(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source.report(),
            "delivery": self.delivery.report(),
            "aws": self.aws.report() if self.aws is not None else [],
            "writes": self.writes.report() if self.writes is not None else None,
        }

    def lines(self) -> list[str]:
        """What the run prints about its faults."""
        found = [
            f"{r['fault']}: {r['faulted']} of {r['matched']} matching requests faulted" for r in self.source.report()
        ]
        for queue, info in self.delivery.report()["duplicates"].items():
            found.append(f"duplicate delivery on {queue}: {info['sent']} extra copies sent ({info['copies']} in all)")
        found.extend(f"poison message put into {queue}" for queue in self.delivery.report()["poison"])
        if self.aws is not None:
            found.extend(f"{r['fault']}: {r['injected']} of {r['matched']} matching calls" for r in self.aws.report())
        return found


def _import(name: str) -> Any:
    import importlib

    return importlib.import_module(name)


# ---------------------------------------------------------------------------------------------------------------
# The accounting: where did everything end up?
# ---------------------------------------------------------------------------------------------------------------

LOCAL = "_local"
Ending = Literal["landed", "held", "unchanged", "dlq", "deferred", "lost"]
ManifestEnding = Literal["staged", "quarantined", "transform_dlq", "lost"]


@dataclass(frozen=True)
class EntryOutcome:
    ref: str  # source/dataset
    ending: Ending
    reason: str | None = None  # for the DLQ: the failure_reason attribute, or the last reason the logs give
    reason_from: Literal["failure_reason", "logs", "none"] | None = None
    manifests: tuple[str, ...] = ()


@dataclass(frozen=True)
class ManifestOutcome:
    key: str
    ref: str
    ending: ManifestEnding
    evidence: str


@dataclass
class RunAudit:
    run_id: str
    entries: dict[str, EntryOutcome]
    manifests: dict[str, ManifestOutcome]
    dead_letters: dict[str, int]

    def count(self, ending: str) -> int:
        return sum(1 for e in self.entries.values() if e.ending == ending)

    def manifest_count(self, ending: str) -> int:
        return sum(1 for m in self.manifests.values() if m.ending == ending)

    @property
    def lost(self) -> list[str]:
        """Entries and manifests that ended nowhere, and dead letters without any reason."""
        entries, manifests = self.entries.values(), self.manifests.values()
        gone = [f"{e.ref}: no landing, no dead letter, nothing deferred" for e in entries if e.ending == "lost"]
        gone += [f"{e.ref}: dead-lettered without a reason" for e in entries if e.ending == "dlq" and not e.reason]
        gone += [f"{m.key}: landed, but neither staged nor quarantined" for m in manifests if m.ending == "lost"]
        return gone

    def outcome_line(self) -> str:
        """landed / staged / quarantined / DLQ counts (deferred and unchanged when there are any), for a table."""
        counts = self.summary()
        labels = (("landed", "landed"), ("staged", "staged"), ("quarantined", "quarantined"), ("dlq", "DLQ"))
        shown = [f"{label} {counts[name]}" for name, label in labels]
        if counts["partial"]:  # staged, with a file or rows of it quarantined
            shown[1] += f" ({counts['partial']} with rejects quarantined)"
        shown += [f"{name} {counts[name]}" for name in ("held", "deferred", "unchanged") if counts[name]]
        return ", ".join(shown)

    def summary(self) -> dict[str, int]:
        return {
            "entries": len(self.entries),
            "landed": self.count("landed"),
            "unchanged": self.count("unchanged"),
            "held": self.count("held"),
            "staged": self.manifest_count("staged"),
            "partial": sum(1 for m in self.manifests.values() if m.ending == "staged" and "rejects" in m.evidence),
            "quarantined": self.manifest_count("quarantined"),
            "dlq": self.count("dlq") + self.manifest_count("transform_dlq"),
            "deferred": self.count("deferred"),
            "lost": len(self.lost),
        }


def _state_items(lake_dir: Path) -> list[dict[str, Any]]:
    from datalake.state import from_item

    path = lake_dir / LOCAL / "state-table.jsonl"
    if not path.exists():
        return []
    return [from_item(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def _kept_messages(lake_dir: Path, file_name: str) -> list[dict[str, Any]]:
    path = lake_dir / LOCAL / file_name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _body(message: dict[str, Any]) -> Any:
    try:
        return json.loads(message["body"])
    except ValueError:
        return None


def _ref_of_request(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("source"), str) and isinstance(body.get("dataset"), str):
        return f"{body['source']}/{body['dataset']}"
    return None


def _log_reasons(lake_dir: Path, run_id: str) -> dict[str, str]:
    """The last failure reason the logs give per source/dataset of a run (in log file order, then line order)."""
    reasons: dict[str, str] = {}
    for path in sorted((lake_dir / LOCAL / "logs").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if not line.startswith("{") or run_id not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            reason = entry.get("reason") or entry.get("error")
            if entry.get("level") in ("WARNING", "ERROR") and reason and entry.get("source") and entry.get("dataset"):
                reasons[f"{entry['source']}/{entry['dataset']}"] = str(reason)
    return reasons


def _staged_sources(lake_dir: Path) -> set[str]:
    """Every ``_source`` (landing object, ``key?versionId=`` for a mirrored file) that has rows in staging."""
    import pyarrow.parquet as pq

    found: set[str] = set()
    for path in (lake_dir / "staging").rglob("*.parquet"):
        table = pq.read_table(path, columns=["_source"], use_threads=False, partitioning=None)
        found.update(s for s in table.column("_source").unique().to_pylist() if s)
    return found


def _manifest_stem(key: str) -> str:
    return key.rsplit("/", 1)[-1].removesuffix(".manifest.json")


def _of_run(message: dict[str, Any], queue: str, run_id: str) -> str | None:
    """The source/dataset of a kept ExtractRequest of this run, or None."""
    body = _body(message)
    if message["queue"] != queue or not isinstance(body, dict) or body.get("run_id") != run_id:
        return None
    return _ref_of_request(body)


class _LakeReader:
    """What a lake folder says about one run: its ledger, manifests, kept messages, logs and staging."""

    def __init__(self, lake_dir: Path, run_id: str) -> None:
        self.lake_dir = Path(lake_dir)
        self.run_id = run_id
        items = _state_items(self.lake_dir)
        self.events = [json.loads(i["event"]) for i in items if i.get("pk") == f"RUN#{run_id}" and "event" in i]
        self.state = {i["pk"]: i for i in items if i.get("sk") == "STATE" and str(i.get("pk")).startswith("DATASET#")}
        self.dead = _kept_messages(self.lake_dir, "dead-letters.jsonl")
        self.pending = _kept_messages(self.lake_dir, "pending.jsonl")
        self.manifests: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for path in sorted((self.lake_dir / "landing").rglob("*.manifest.json")):
            document = json.loads(path.read_text())
            if document.get("run_id") == run_id:
                ref = f"{document['source']}/{document['dataset']}"
                self.manifests.setdefault(ref, []).append((path.relative_to(self.lake_dir).as_posix(), document))

    def expected(self) -> list[str]:
        started = [e for e in self.events if e.get("event_type") == "run.started"]
        if not started:
            raise LookupError(f"no run.started for {self.run_id} in {self.lake_dir / LOCAL / 'state-table.jsonl'}")
        return list(dict.fromkeys(started[0]["datasets"]))

    def entry(
        self, ref: str, dead: dict[str, dict[str, Any]], deferred: set[str], log_reasons: dict[str, str]
    ) -> EntryOutcome:
        landed = tuple(k for k, _ in self.manifests.get(ref, []))
        unchanged = {f"{e['source']}/{e['dataset']}" for e in self.events if e.get("event_type") == "dataset.unchanged"}
        if ref in dead:
            return self._dead(ref, dead[ref], log_reasons, landed)
        if landed:
            return EntryOutcome(ref, "landed", manifests=landed)
        held = [e for e in self.events if e.get("event_type") == "dataset.held" and ref == _ref_of_request(e)]
        if held:  # landed raw and held: the previous snapshot stays current, and people were told why
            return EntryOutcome(ref, "held", held[-1].get("reason"), "failure_reason")
        if ref in unchanged:
            return EntryOutcome(ref, "unchanged")
        return EntryOutcome(ref, "deferred" if ref in deferred else "lost")

    @staticmethod
    def _dead(ref: str, message: dict[str, Any], log_reasons: dict[str, str], landed: tuple[str, ...]) -> EntryOutcome:
        attribute = (message.get("message_attributes") or {}).get("failure_reason", {})
        if attribute.get("StringValue"):
            return EntryOutcome(ref, "dlq", attribute["StringValue"], "failure_reason", landed)
        if ref in log_reasons:
            return EntryOutcome(ref, "dlq", log_reasons[ref], "logs", landed)
        return EntryOutcome(ref, "dlq", None, "none", landed)

    def manifest(self, ref: str, key: str, document: dict[str, Any], staged_sources: set[str]) -> ManifestOutcome:
        """Where one landed manifest ended: its quarantine folder, the transformer's record of staging it, rows of
        its own parts in staging, or the TransformDLQ (whose bodies carry the key URL-encoded, as S3 sends it)."""
        source, _, dataset = ref.partition("/")
        quarantine = self.lake_dir / "quarantine" / source / dataset / _manifest_stem(key)
        own = f"landing/{source}/{dataset}/"
        parts = {p["key"] for p in document["parts"] if p["key"].startswith(own)} | {
            f"{p['key']}?versionId={p['version_id']}" for p in document["parts"] if p.get("version_id")
        }
        staged_events = {e.get("manifest_key") for e in self.events if e.get("event_type") == "dataset.staged"}
        recorded = self.state.get(f"DATASET#{source}#{dataset}", {}).get("staged_manifest_key") == key
        staged = recorded or key in staged_events or bool(parts & staged_sources)
        if quarantine.is_dir() and any(quarantine.iterdir()):
            if staged:  # rows or one bulk file rejected, the rest of the landing staged
                return ManifestOutcome(key, ref, "staged", f"staged; rejects in {quarantine.name}/")
            return ManifestOutcome(key, ref, "quarantined", f"{quarantine.relative_to(self.lake_dir)}/")
        if staged:
            return ManifestOutcome(key, ref, "staged", "recorded staged" if recorded else "rows in staging")
        if any(key in unquote_plus(m["body"]) for m in self.dead if m["queue"] == "TransformDLQ"):
            return ManifestOutcome(key, ref, "transform_dlq", "TransformDLQ")
        return ManifestOutcome(key, ref, "lost", "nowhere")


def dead_letters(lake_dir: Path) -> list[tuple[str, str]]:
    """``(DLQ, source/dataset)`` of every message a lake's DLQs keep (the body's start when it is no request)."""
    found = []
    for message in _kept_messages(Path(lake_dir), "dead-letters.jsonl"):
        found.append((message["queue"], _ref_of_request(_body(message)) or message["body"][:80]))
    return found


def audit_run(lake_dir: Path, run_id: str) -> RunAudit:
    """Where every catalog entry of a run, and every manifest it landed, ended up (see the module docstring).

    Raises
    ------
    LookupError
        When the lake's ledger has no ``run.started`` for the run: without it, nobody knows what was expected.
    """
    lake = _LakeReader(lake_dir, run_id)
    dead = {ref: m for m in lake.dead if (ref := _of_run(m, "ExtractDLQ", run_id))}
    deferred = {ref for m in lake.pending if (ref := _of_run(m, "ExtractQueue", run_id))}
    log_reasons = _log_reasons(lake.lake_dir, run_id)
    entries = {ref: lake.entry(ref, dead, deferred, log_reasons) for ref in lake.expected()}
    staged_sources = _staged_sources(lake.lake_dir)
    manifests = {
        key: lake.manifest(ref, key, document, staged_sources)
        for ref, landed in lake.manifests.items()
        for key, document in landed
    }
    return RunAudit(run_id, entries, manifests, dict(Counter(m["queue"] for m in lake.dead)))


# ---------------------------------------------------------------------------------------------------------------
# Comparing lakes
# ---------------------------------------------------------------------------------------------------------------

LINEAGE_COLUMNS = ("_source", "_ingested_at", "_run_id")


def mart_tables(lake_dir: Path) -> dict[str, Any]:
    """Every mart of a lake folder, as a pyarrow Table, by its key (the lineage documents are not marts)."""
    import pyarrow.parquet as pq

    marts = Path(lake_dir) / "marts"
    return {
        path.relative_to(lake_dir).as_posix(): pq.read_table(path, use_threads=False, partitioning=None)
        for path in sorted(marts.rglob("*.parquet"))
        if "_lineage" not in path.parts
    }


def staging_tables(lake_dir: Path) -> dict[str, Any]:
    """Every staging table of a lake folder without its lineage columns, rows sorted, by table name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables: dict[str, list[Any]] = {}
    staging = Path(lake_dir) / "staging"
    for path in sorted(staging.rglob("*.parquet")):
        if path.relative_to(staging).parts[0].endswith("_retired"):
            continue  # history, not current staging (its rows carry when they were retired)
        table = pq.read_table(path, use_threads=False, partitioning=None)
        keep = [c for c in table.column_names if c not in LINEAGE_COLUMNS]
        partitions = [p.split("=", 1) for p in path.relative_to(staging).parts[1:-1] if "=" in p]
        table = table.select(keep)
        for column, value in partitions:
            table = table.append_column(column, pa.array([value] * table.num_rows, pa.string()))
        tables.setdefault(path.relative_to(staging).parts[0], []).append(table)
    merged = {}
    for name, parts in tables.items():
        table = pa.concat_tables(parts, promote_options="permissive")
        merged[name] = table.sort_by([(c, "ascending") for c in table.column_names if _sortable(table, c)])
    return merged


def _sortable(table: Any, column: str) -> bool:
    import pyarrow as pa

    kind = table.schema.field(column).type
    return not (pa.types.is_nested(kind) or pa.types.is_dictionary(kind))


def table_differences(ours: dict[str, Any], theirs: dict[str, Any], what: str) -> list[str]:
    """What differs between two sets of tables, in words; empty when their contents are equal."""
    found = []
    for name in sorted(set(ours) | set(theirs)):
        if name not in ours or name not in theirs:
            found.append(f"{what} {name}: only in {'the first' if name in ours else 'the second'} lake")
            continue
        a, b = ours[name], theirs[name]
        if a.schema != b.schema:
            found.append(f"{what} {name}: schemas differ ({a.schema.names} vs {b.schema.names})")
        elif not a.equals(b):
            rows_a, rows_b = Counter(map(_row_key, a.to_pylist())), Counter(map(_row_key, b.to_pylist()))
            only_a, only_b = list((rows_a - rows_b).elements()), list((rows_b - rows_a).elements())
            found.append(
                f"{what} {name}: {a.num_rows} vs {b.num_rows} rows, {len(only_a)} only in the first, "
                f"{len(only_b)} only in the second; e.g. {only_a[:3]} vs {only_b[:3]}"
            )
    return found


def _row_key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def mart_differences(lake: Path, reference: Path) -> list[str]:
    return table_differences(mart_tables(lake), mart_tables(reference), "mart")


def staging_differences(lake: Path, reference: Path) -> list[str]:
    return table_differences(staging_tables(lake), staging_tables(reference), "staging table")


def run_record(lake_dir: Path, run_id: str) -> dict[str, Any]:
    """The record ``python -m localrun`` writes for a run (stages, replay requests, faults)."""
    return json.loads((Path(lake_dir) / LOCAL / "runs" / f"{run_id}.json").read_text())


# ---------------------------------------------------------------------------------------------------------------
# Driving local runs, each in a fresh process (as ``make run`` does: every run is a cold start)
# ---------------------------------------------------------------------------------------------------------------

_FINISHED = re.compile(r"^run (\S+) finished in", re.M)
_STARTED = re.compile(r"^   run (\S+): \d+ extract requests sent$", re.M)


class LocalRunFailed(RuntimeError):
    """``python -m localrun`` exited with an error."""


@dataclass(frozen=True)
class LocalRun:
    lake_dir: Path
    args: tuple[str, ...]
    output: str
    run_id: str  # the run the scheduler started; for a redrive run, the runtime's own "redrive-..." id
    record_id: str
    seconds: float

    @property
    def record(self) -> dict[str, Any]:
        return run_record(self.lake_dir, self.record_id)

    def stage(self, logical_id: str) -> dict[str, Any]:
        return self.record["stages"].get(logical_id, {})


def run_local(lake_dir: Path, *args: str, plan: dict[str, Any] | None = None, timeout: float = 1200.0) -> LocalRun:
    """Run ``python -m localrun --lake-dir LAKE ARGS`` (with ``--faults`` when a plan is given) in a new process.

    Raises
    ------
    LocalRunFailed
        When the run exits with an error (its output's tail is in the message).
    """
    import os
    import subprocess

    from localrun.template import ROOT

    lake_dir = Path(lake_dir)
    command = [sys.executable, "-m", "localrun", "--lake-dir", str(lake_dir), *args]
    if plan is not None:
        PlanDocument.model_validate(plan)  # a wrong plan fails here, not in the child
        plans = lake_dir.parent / f"{lake_dir.name}-plans"
        plans.mkdir(parents=True, exist_ok=True)
        path = plans / f"{len(list(plans.iterdir())):02d}.json"
        path.write_text(json.dumps(plan, indent=1))
        command += ["--faults", str(path)]
    env = {k: v for k, v in os.environ.items() if k != "BLS_API_KEY"}  # the replay's keyless limits, always
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise LocalRunFailed(
            f"{' '.join(command[2:])} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    finished = _FINISHED.search(done.stdout)
    if finished is None:
        raise LocalRunFailed(f"{' '.join(command[2:])} did not finish a run:\n{done.stdout[-3000:]}")
    started_run = _STARTED.search(done.stdout)
    record_id = finished.group(1)
    return LocalRun(
        lake_dir=lake_dir,
        args=tuple(args),
        output=done.stdout,
        run_id=started_run.group(1) if started_run else record_id,
        record_id=record_id,
        seconds=round(time.monotonic() - started, 1),
    )


_REFERENCE_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def reference_lake(base_dir: Path, *args: str) -> Path:
    """The lake of a clean run over ``args``, made once per base folder and reused (thread-safe).

    No fault is injected; the run only counts its S3 writes (``record_writes``), and its console output is kept in
    ``_local/clean-output.txt``, so tests can compare a faulted run's writes and messages with it.
    """
    name = "clean-" + (re.sub(r"[^A-Za-z0-9]+", "-", " ".join(args)).strip("-") or "all")
    lake = Path(base_dir) / name
    with _LOCKS_LOCK:
        lock = _REFERENCE_LOCKS.setdefault(lake, threading.Lock())
    with lock:
        if not (lake / LOCAL / "clean").exists():
            import shutil

            shutil.rmtree(lake, ignore_errors=True)  # what an interrupted attempt left
            done = run_local(lake, *args, plan={"name": "clean (writes counted)", "record_writes": True})
            (lake / LOCAL / "clean-output.txt").write_text(done.output)
            (lake / LOCAL / "clean").write_text(done.run_id)
    return lake


def reference_run_id(lake: Path) -> str:
    """The run id of a lake made by ``reference_lake``."""
    return (Path(lake) / LOCAL / "clean").read_text().strip()
