"""A replay of the source APIs over real HTTP on 127.0.0.1, serving a recorded snapshot folder.

The extractor talks to it exactly as it talks to the live APIs: same URL shapes, methods, headers and formats.
Only the base URLs differ, and ``ReplayServer.environment()`` gives them under the extractor settings' names.

Replay folder layout (``data/replay/README.md`` has the bundled folder's provenance)::

    bls_bulk/{survey}/{file}          served under /pub/time.series/{survey}/ with an IIS-style listing (the BLS
                                      format) and Last-Modified from the file's mtime; 403 without a User-Agent
                                      that carries a contact email, like download.bls.gov
    bls_api/*.json                    recorded BLS API v2 responses; POST /publicAPI/v2/timeseries/data/ answers
                                      each requested series from whichever recordings hold it, filtered to the
                                      requested years, with the real limits (50 series / 20 years with a key,
                                      25 / 10 without)
    datausa/population.json           GET /tesseract/data.jsonrecords (and the legacy GET /api/data)
    socrata/{id}.json                 GET /resource/{id}.json with $limit / $offset / $order=:id paging
    socrata/{id}.views.json           GET /api/views/{id}.json (synthesised from the rows' keys when absent)

Something absent is answered the way the real API answers for something that does not exist (404 for a
Socrata dataset or a bulk file), except a BLS series that no recording holds: the API answers it like a series
with no observations in the window ("No Data Available for Series X Year: YYYY"), because a snapshot that
lacks a series is no evidence that the series does not exist. A nonexistent series is represented by a
recording that says so (message "Series does not exist for Series X", ``data: []``).

Fault injection: every request passes through a chain of hooks (``add_hook``). A hook receives the request and
a ``proceed`` callable that computes the normal answer; it may return that answer, change it (schema drift,
a different status, an HTML body), or answer on its own (429 with Retry-After, 503, REQUEST_NOT_PROCESSED), and
ask for transport faults through ``ReplayResponse`` (a delay before answering, a slow drip, a truncated body,
a connection reset).
"""

from __future__ import annotations

import email.utils
import hashlib
import html
import json
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

BLS_API_PATH = "/publicAPI/v2/timeseries/data/"
BLS_BULK_PATH = "/pub/time.series/"
DATAUSA_PATH = "/tesseract/data.jsonrecords"
DATAUSA_LEGACY_PATH = "/api/data"

ENDPOINTS = (
    "bls_api",
    "bls_bulk_listing",
    "bls_bulk_file",
    "datausa",
    "socrata_rows",
    "socrata_count",
    "socrata_views",
    "unknown",
)

# The real limits of the BLS API: (series per query, years per query), with and without a registration key.
BLS_LIMITS_WITH_KEY = (50, 20)
BLS_LIMITS_WITHOUT_KEY = (25, 10)
SOCRATA_DEFAULT_LIMIT = 1000  # SODA 2.0 answers 1,000 rows when $limit is absent
SOCRATA_MAX_LIMIT = 50_000

_CONTACT = re.compile(r"[^@\s()<>;,]+@[^@\s()<>;,]+\.[A-Za-z]{2,}")
_SOCRATA_ID = re.compile(r"^[a-z0-9]{4}-[a-z0-9]{4}$")
_SOCRATA_COUNT = re.compile(r"count\(\s*\*\s*\)(?:\s+as\s+([A-Za-z_][A-Za-z0-9_]*))?", re.I)
_SURVEY = re.compile(r"^[a-z]{2}$")
_BULK_FILE = re.compile(r"^[a-z]{2}\.[A-Za-z0-9_.\-]{1,120}$")
_SERIES_IN_MESSAGE = re.compile(r"Series (?:does not exist|not found) for Series ([A-Z0-9]+)", re.I)


# ---------------------------------------------------------------------------------------------------------------
# Requests, responses and hooks
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayRequest:
    """One request as the replay saw it. ``number`` is its 1-based position among this endpoint's requests."""

    endpoint: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    number: int

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class ReplayResponse:
    """An answer, plus the transport faults a fault-injection hook may ask for."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay_seconds: float = 0.0  # wait before the status line (longer than the client's read timeout = a timeout)
    drip_bytes_per_second: float | None = None  # send the body slowly
    truncate_after: int | None = None  # announce the full Content-Length, send this many bytes, then close
    reset: bool = False  # drop the connection (TCP RST) without answering

    @classmethod
    def json_body(cls, document: Any, status: int = 200, **kwargs: Any) -> ReplayResponse:
        return cls(status=status, body=json.dumps(document).encode(), **kwargs)


class ReplayHook(Protocol):
    def __call__(self, request: ReplayRequest, proceed: Callable[[], ReplayResponse]) -> ReplayResponse: ...


def _not_found(message: str = "Not found") -> ReplayResponse:
    return ReplayResponse.json_body({"error": True, "message": message}, status=404)


# ---------------------------------------------------------------------------------------------------------------
# BLS API v2
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _RecordedSeries:
    series_id: str
    observations: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (year, period) -> item
    catalog: dict[str, Any] | None = None
    does_not_exist: bool = False
    files: list[str] = field(default_factory=list)


def _response_of(document: Any) -> dict[str, Any] | None:
    """A v2 response, unwrapped from a committer's ``{"data": <response>}`` wrapper if need be."""
    if isinstance(document, dict) and "Results" in document:
        return document
    if isinstance(document, dict) and isinstance(document.get("data"), dict) and "Results" in document["data"]:
        return document["data"]
    return None


def index_bls_recordings(files: Iterable[Path]) -> dict[str, _RecordedSeries]:
    """Every series held by the recordings, the observations of all recordings merged.

    Where two recordings hold the same (year, period), the first file in name order wins.
    """
    index: dict[str, _RecordedSeries] = {}
    for path in sorted(files):
        response = _response_of(json.loads(path.read_bytes()))
        if response is None:
            continue
        missing = {m.group(1) for text in response.get("message") or [] for m in [_SERIES_IN_MESSAGE.search(text)] if m}
        series_list = (response.get("Results") or {}).get("series") or []
        for series in series_list:
            sid = series.get("seriesID")
            if not isinstance(sid, str):
                continue
            entry = index.setdefault(sid, _RecordedSeries(series_id=sid))
            entry.files.append(path.name)
            if sid in missing and not series.get("data"):
                entry.does_not_exist = True
            if series.get("catalog") and entry.catalog is None:
                entry.catalog = series["catalog"]
            for item in series.get("data") or []:
                entry.observations.setdefault((str(item.get("year")), str(item.get("period"))), item)
        for sid in missing - {s.get("seriesID") for s in series_list}:
            index.setdefault(sid, _RecordedSeries(series_id=sid, files=[path.name])).does_not_exist = True
    return index


def _period_order(item: dict[str, Any]) -> tuple[int, str]:
    return int(item.get("year", 0)), str(item.get("period", ""))


def _observation(item: dict[str, Any], calculations: bool) -> dict[str, Any]:
    out = {k: v for k, v in item.items() if k != "calculations"}
    if calculations and "calculations" in item:
        out["calculations"] = item["calculations"]
    return out


def answer_bls_api(index: dict[str, _RecordedSeries], payload: Any) -> dict[str, Any]:
    """The v2 response to one POST body, as BLS would answer it from the recorded series."""
    if not isinstance(payload, dict) or not isinstance(payload.get("seriesid"), list) or not payload["seriesid"]:
        return {
            "status": "REQUEST_FAILED_INVALID_PARAMETERS",
            "responseTime": 0,
            "message": ["Invalid request: a JSON body with a non-empty seriesid array is required."],
            "Results": {},
        }
    has_key = bool(payload.get("registrationkey"))
    max_series, max_years = BLS_LIMITS_WITH_KEY if has_key else BLS_LIMITS_WITHOUT_KEY
    series_ids = [str(s).strip().upper() for s in payload["seriesid"]]
    if len(series_ids) > max_series:
        # Replay enforcement of the documented per-query series limit (the live API's exact wording is unknown).
        return {
            "status": "REQUEST_FAILED_INVALID_PARAMETERS",
            "responseTime": 0,
            "message": [f"Replay: {len(series_ids)} series requested; the limit is {max_series} series per query."],
            "Results": {},
        }
    this_year = datetime.now(UTC).year
    try:
        start = int(payload.get("startyear") or this_year - max_years + 1)
        end = int(payload.get("endyear") or this_year)
    except (TypeError, ValueError):
        return {"status": "REQUEST_FAILED_INVALID_PARAMETERS", "responseTime": 0, "message": ["Year is invalid."]}
    if end < start:
        return {"status": "REQUEST_FAILED_INVALID_PARAMETERS", "responseTime": 0, "message": ["End year is invalid."]}
    messages: list[str] = []
    if end - start + 1 > max_years:
        end = start + max_years - 1
        messages.append(f"Year range has been reduced to the system-allowed limit of {max_years} years.")
    want_catalog = bool(payload.get("catalog")) and has_key
    want_calculations = bool(payload.get("calculations")) and has_key
    want_annual = bool(payload.get("annualaverage")) and has_key
    results = []
    for sid in series_ids:
        recorded = index.get(sid)
        if recorded is not None and recorded.does_not_exist:
            messages.append(f"Series does not exist for Series {sid}")
            results.append({"seriesID": sid, "data": []})
            continue
        items = []
        if recorded is not None:
            items = [
                _observation(item, want_calculations)
                for (year, period), item in recorded.observations.items()
                if year.isdigit() and start <= int(year) <= end and (want_annual or period != "M13")
            ]
        items.sort(key=_period_order, reverse=True)
        years_with_data = {int(i["year"]) for i in items}
        messages.extend(
            f"No Data Available for Series {sid} Year: {year}"
            for year in range(start, end + 1)
            if year not in years_with_data
        )
        series: dict[str, Any] = {"seriesID": sid}
        if want_catalog and recorded is not None and recorded.catalog:
            series["catalog"] = recorded.catalog
        series["data"] = items
        results.append(series)
    return {"status": "REQUEST_SUCCEEDED", "responseTime": 1, "message": messages, "Results": {"series": results}}


# ---------------------------------------------------------------------------------------------------------------
# BLS bulk listing
# ---------------------------------------------------------------------------------------------------------------


def _listing_stamp(moment: datetime) -> tuple[str, str]:
    date = f"{moment.month}/{moment.day}/{moment.year}"
    hour = moment.hour % 12 or 12
    return date, f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def bls_listing_html(survey: str, files: Iterable[tuple[str, int, datetime]]) -> str:
    """A directory listing in download.bls.gov's format (IIS): date, time, size, then the link, ``<br>``-separated."""
    directory = f"{BLS_BULK_PATH}{survey}/"
    rows = []
    for name, size, modified in sorted(files):
        date, clock = _listing_stamp(modified)
        rows.append(
            f'{date:>10} {clock:>8} {size:>12} <A HREF="{directory}{html.escape(name)}">{html.escape(name)}</A><br>'
        )
    return (
        f"<html><head><title>download.bls.gov - {directory}</title></head><body>"
        f"<H1>download.bls.gov - {directory}</H1><hr>\r\n\r\n"
        f'<pre><A HREF="{BLS_BULK_PATH}">[To Parent Directory]</A><br><br>'
        + "".join(rows)
        + "</pre><hr></body></html>\r\n"
    )


_ACCESS_DENIED = (
    b'<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head><title>403 Forbidden</title></head>'
    b"<body><h1>Access Denied</h1><p>You don't have permission to access this resource. Please include a "
    b"User-Agent header with contact information (an email address) in your requests.</p></body></html>\n"
)


# ---------------------------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------------------------


class ReplayServer:
    """The replay HTTP server, in a thread of this process, on 127.0.0.1.

    Parameters
    ----------
    replay_dir: the snapshot folder (layout in the module docstring).
    port: a fixed port, or None for a free one.
    hooks: fault-injection hooks, applied in order (the first is outermost).
    """

    def __init__(self, replay_dir: Path, port: int | None = None, hooks: Iterable[ReplayHook] = ()) -> None:
        self.replay_dir = Path(replay_dir).resolve()
        if not self.replay_dir.is_dir():
            raise FileNotFoundError(f"replay folder {self.replay_dir} does not exist")
        self._port = port or 0
        self.hooks: list[ReplayHook] = list(hooks)
        self.counts: Counter[str] = Counter()
        self.log: list[ReplayRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._bls_index: dict[str, _RecordedSeries] | None = None
        self._socrata_cache: dict[str, tuple[tuple[str, int], list[dict[str, Any]]]] = {}

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> ReplayServer:
        replay = self

        class Handler(_ReplayHandler):
            server_replay = replay

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="replay-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the replay server is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """The extractor's source endpoints (ExtractorSettings' variable names), pointing at this server."""
        return {
            "BLS_API_URL": f"{self.base_url}{BLS_API_PATH}",
            "BLS_BULK_URL": f"{self.base_url}{BLS_BULK_PATH}",
            "DATAUSA_URL": f"{self.base_url}{DATAUSA_PATH}",
            "SOCRATA_URL": f"{self.base_url}/",
        }

    # -- counters and hooks -------------------------------------------------------------------------------------
    def request_count(self, endpoint: str | None = None) -> int:
        with self._lock:
            return sum(self.counts.values()) if endpoint is None else self.counts[endpoint]

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.log.clear()

    def add_hook(self, hook: ReplayHook) -> ReplayHook:
        self.hooks.append(hook)
        return hook

    def clear_hooks(self) -> None:
        self.hooks.clear()

    def _register(
        self, endpoint: str, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> ReplayRequest:
        with self._lock:
            self.counts[endpoint] += 1
            request = ReplayRequest(endpoint, method, path, query, headers, body, self.counts[endpoint])
            self.log.append(request)
            return request

    # -- routing ------------------------------------------------------------------------------------------------
    @staticmethod
    def endpoint_of(method: str, path: str, query: dict[str, str] | None = None) -> str:
        if method == "POST" and path.rstrip("/") == BLS_API_PATH.rstrip("/"):
            return "bls_api"
        if path.startswith(BLS_BULK_PATH):
            return "bls_bulk_listing" if path.endswith("/") else "bls_bulk_file"
        if path in (DATAUSA_PATH, DATAUSA_LEGACY_PATH):
            return "datausa"
        if path.startswith("/resource/"):
            counting = _SOCRATA_COUNT.fullmatch(" ".join((query or {}).get("$select", "").split()))
            return "socrata_count" if counting else "socrata_rows"
        if path.startswith("/api/views/"):
            return "socrata_views"
        return "unknown"

    def respond(self, request: ReplayRequest) -> ReplayResponse:
        """The answer to a request: the hooks, outermost first, around the recorded answer."""

        def innermost() -> ReplayResponse:
            return self._answer(request)

        call: Callable[[], ReplayResponse] = innermost
        for hook in reversed(self.hooks):
            call = partial(hook, request, call)
        return call()

    def answer_unhooked(self, request: ReplayRequest) -> ReplayResponse:
        """The recorded answer to a request, past every hook (a fault that answers with another page)."""
        return self._answer(request)

    def _answer(self, request: ReplayRequest) -> ReplayResponse:
        answers: dict[str, Callable[[ReplayRequest], ReplayResponse]] = {
            "bls_api": self._bls_api,
            "bls_bulk_listing": self._bls_bulk,
            "bls_bulk_file": self._bls_bulk,
            "datausa": self._datausa,
            "socrata_rows": self._socrata_rows,
            "socrata_count": self._socrata_rows,
            "socrata_views": self._socrata_views,
        }
        answer = answers.get(request.endpoint)
        if answer is None:
            return _not_found()
        if request.endpoint != "bls_api" and request.method != "GET":
            return ReplayResponse.json_body({"error": True, "message": "Method not allowed"}, status=405)
        return answer(request)

    # -- sources ------------------------------------------------------------------------------------------------
    def bls_index(self) -> dict[str, _RecordedSeries]:
        if self._bls_index is None:
            self._bls_index = index_bls_recordings((self.replay_dir / "bls_api").glob("*.json"))
        return self._bls_index

    def _bls_api(self, request: ReplayRequest) -> ReplayResponse:
        try:
            payload = request.json()
        except ValueError:
            payload = None
        return ReplayResponse.json_body(answer_bls_api(self.bls_index(), payload))

    def _bls_bulk(self, request: ReplayRequest) -> ReplayResponse:
        if not _CONTACT.search(request.headers.get("user-agent", "")):
            return ReplayResponse(status=403, body=_ACCESS_DENIED, content_type="text/html")
        parts = request.path[len(BLS_BULK_PATH) :].split("/")
        survey = parts[0]
        directory = self.replay_dir / "bls_bulk" / survey
        if not _SURVEY.fullmatch(survey) or not directory.is_dir():
            return ReplayResponse(
                status=404,
                body=b"<html><body>404 - File or directory not found.</body></html>",
                content_type="text/html",
            )
        if request.endpoint == "bls_bulk_listing":
            if len(parts) != 2 or parts[1]:
                return ReplayResponse(
                    status=404,
                    body=b"<html><body>404 - File or directory not found.</body></html>",
                    content_type="text/html",
                )
            files = [
                (p.name, p.stat().st_size, datetime.fromtimestamp(p.stat().st_mtime, UTC))
                for p in directory.iterdir()
                if p.is_file() and _BULK_FILE.fullmatch(p.name)
            ]
            return ReplayResponse(body=bls_listing_html(survey, files).encode(), content_type="text/html")
        name = parts[1] if len(parts) == 2 else ""
        path = directory / name
        if not _BULK_FILE.fullmatch(name) or not path.is_file():
            return ReplayResponse(
                status=404,
                body=b"<html><body>404 - File or directory not found.</body></html>",
                content_type="text/html",
            )
        modified = email.utils.formatdate(path.stat().st_mtime, usegmt=True)
        return ReplayResponse(body=path.read_bytes(), content_type="text/plain", headers={"Last-Modified": modified})

    def _datausa(self, request: ReplayRequest) -> ReplayResponse:
        path = self.replay_dir / "datausa" / "population.json"
        if not path.is_file():
            return ReplayResponse.json_body({"detail": "Not Found"}, status=404)
        return ReplayResponse(body=path.read_bytes())

    def _socrata_rows(self, request: ReplayRequest) -> ReplayResponse:
        name = request.path[len("/resource/") :]
        dataset, _, fmt = name.rpartition(".")
        path = self.replay_dir / "socrata" / f"{dataset}.json"
        if fmt != "json" or not _SOCRATA_ID.fullmatch(dataset) or not path.is_file():
            return ReplayResponse.json_body(
                {"code": "not_found", "error": True, "message": f"Dataset {dataset} not found"}, status=404
            )
        try:
            limit = int(request.query.get("$limit", SOCRATA_DEFAULT_LIMIT))
            offset = int(request.query.get("$offset", 0))
        except ValueError:
            return ReplayResponse.json_body(
                {"code": "query.soql.invalid", "error": True, "message": "$limit and $offset must be integers"},
                status=400,
            )
        rows = self._socrata_file(path)
        select = " ".join(request.query.get("$select", "*").split())
        count = _SOCRATA_COUNT.fullmatch(select)
        if count:  # $select=count(*) [AS alias]: SODA answers the number as a string
            return ReplayResponse.json_body([{count.group(1) or "count": str(len(rows))}])
        order = request.query.get("$order", ":id").strip()
        if order.lower() not in (":id", ":id asc") or limit < 0 or offset < 0 or limit > SOCRATA_MAX_LIMIT:
            return ReplayResponse.json_body(
                {"code": "query.soql.invalid", "error": True, "message": f"Unsupported paging: {request.query}"},
                status=400,
            )
        if select.replace(" ", "") not in ("*", ":id,*"):
            return ReplayResponse.json_body(
                {"code": "query.soql.invalid", "error": True, "message": f"Unsupported $select: {select}"}, status=400
            )
        page = rows[offset : offset + limit]
        if select.startswith(":id"):  # the system field, stable per row: derived from the dataset and the row's place
            page = [{":id": socrata_row_id(dataset, offset + i), **row} for i, row in enumerate(page)]
        return ReplayResponse(body=json.dumps(page, ensure_ascii=False).encode())

    def _socrata_file(self, path: Path) -> list[dict[str, Any]]:
        """A recorded dataset's rows, parsed once per file version (a large dataset is paged many times)."""
        stamp = (str(path), path.stat().st_mtime_ns)
        with self._lock:
            cached = self._socrata_cache.get(stamp[0])
            if cached is not None and cached[0] == stamp:
                return cached[1]
        rows = json.loads(path.read_bytes())
        with self._lock:
            self._socrata_cache[stamp[0]] = (stamp, rows)
        return rows

    def _socrata_views(self, request: ReplayRequest) -> ReplayResponse:
        dataset = request.path[len("/api/views/") :].removesuffix(".json")
        if not _SOCRATA_ID.fullmatch(dataset):
            return _not_found()
        views = self.replay_dir / "socrata" / f"{dataset}.views.json"
        if views.is_file():
            return ReplayResponse(body=views.read_bytes())
        rows_path = self.replay_dir / "socrata" / f"{dataset}.json"
        if not rows_path.is_file():
            return ReplayResponse.json_body(
                {"code": "not_found", "error": True, "message": f"Cannot find view with id {dataset}"}, status=404
            )
        columns: dict[str, None] = {}
        for row in json.loads(rows_path.read_bytes()):
            columns.update(dict.fromkeys(row))
        return ReplayResponse.json_body(
            {
                "id": dataset,
                "name": dataset,
                "description": "Synthesised by the replay server: no views.json was recorded for this dataset.",
                "columns": [
                    {"id": i, "name": c, "fieldName": c, "dataTypeName": "text", "position": i + 1}
                    for i, c in enumerate(columns)
                ],
            }
        )


_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_ID_SPACE = 36**12


def socrata_row_id(dataset: str, index: int) -> str:
    """The ``:id`` the replay gives a recorded row: the shape of SODA's (``row-xxxx~yyyy.zzzz``), stable per place.

    Unique by construction, as Socrata's are: the row's place, offset by the dataset, times an odd multiplier prime
    to 36, modulo 36^12, is a one-to-one map onto twelve base-36 digits (a hash of 48 bits would give two rows of
    a five-million-row dataset the same id about once in twenty datasets, and the proof would rightly refuse it).
    """
    offset = int.from_bytes(hashlib.sha256(dataset.encode()).digest()[:8], "big")
    value = ((index + offset) * 0x9E3779B97F4A7C15) % _ID_SPACE
    digits = []
    for _ in range(12):
        value, digit = divmod(value, 36)
        digits.append(_ID_ALPHABET[digit])
    text = "".join(digits)
    return f"row-{text[:4]}~{text[4:8]}.{text[8:]}"


class _ReplayHandler(BaseHTTPRequestHandler):
    server_replay: ReplayServer
    protocol_version = "HTTP/1.1"
    server_version = "ReplayServer/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        return  # quiet: the counters and the log are the record

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        replay = self.server_replay
        request = replay._register(replay.endpoint_of(method, path, query), method, path, query, headers, body)
        try:
            response = replay.respond(request)
        except Exception as exc:  # noqa: BLE001 - a broken hook or recording answers 500, as a server would
            response = ReplayResponse.json_body({"error": True, "message": f"replay error: {exc}"}, status=500)
        self._send(response)

    def _send(self, response: ReplayResponse) -> None:
        if response.delay_seconds:
            time.sleep(response.delay_seconds)
        if response.reset:
            # SO_LINGER with a zero timeout: close() sends a TCP RST, as a dropped connection would.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.truncate_after is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        body = response.body if response.truncate_after is None else response.body[: response.truncate_after]
        try:
            if response.drip_bytes_per_second:
                chunk = max(1, int(response.drip_bytes_per_second / 10))
                for start in range(0, len(body), chunk):
                    self.wfile.write(body[start : start + chunk])
                    self.wfile.flush()
                    time.sleep(0.1)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout or budget ran out)
