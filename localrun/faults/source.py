"""The fault source: a hook in the replay server's chain, so the extractor meets a misbehaving source over real
HTTP on 127.0.0.1. Each fault is scripted per endpoint and/or dataset, and clears after ``attempts`` matching
requests (or never)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from localrun.faults.spec import SourceFault
from localrun.replay import BLS_BULK_PATH, ReplayRequest, ReplayResponse, ReplayServer

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
    # a data field: the system fields (``:id``, which the extractor asks for with every page) are SODA's, not the
    # publisher's, and renaming ``:id`` is a disproof of the snapshot, not a schema change
    fields = [name for name in (document[0] if document else {}) if not str(name).startswith(":")]
    renamed = fields[0] if fields else None
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
