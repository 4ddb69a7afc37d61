"""Extractor domain: pure logic. No boto3, no HTTP, no environment, no Powertools.

- BLS API: limits, year windows, coalescing a batch's series into as few queries as the limits allow, reading a
  v2 response and splitting it back per series.
- BLS bulk: parsing the download.bls.gov directory listing, and the sync plan of a mirror.
- Socrata and DataUSA: paging, counting rows, the shapes of a response.
- Hashing for change detection, and the growing deferral of quota-limited messages.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from datalake.contracts import ExtractParams
from extractor.errors import BadPayload, InvalidRequest

# ---------------------------------------------------------------------------------------------------------------
# Hashing
# ---------------------------------------------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(document: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no whitespace, UTF-8. Hashes compare values, not layout."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_sha256(document: Any) -> str:
    return sha256_hex(canonical_json(document))


# ---------------------------------------------------------------------------------------------------------------
# BLS API v2: limits, windows, coalescing
# ---------------------------------------------------------------------------------------------------------------

STATUS_SUCCEEDED = "REQUEST_SUCCEEDED"
STATUS_NOT_PROCESSED = "REQUEST_NOT_PROCESSED"
STATUS_INVALID_PARAMETERS = "REQUEST_FAILED_INVALID_PARAMETERS"


@dataclass(frozen=True)
class BlsLimits:
    series_per_query: int
    years_per_query: int


WITH_KEY = BlsLimits(series_per_query=50, years_per_query=20)
WITHOUT_KEY = BlsLimits(series_per_query=25, years_per_query=10)


def bls_limits(has_key: bool) -> BlsLimits:
    """50 series and 20 years per query with a registration key; the v1 limits (25 and 10) without one."""
    return WITH_KEY if has_key else WITHOUT_KEY


def requested_years(params: ExtractParams, today: date, window_years: int) -> tuple[int, int]:
    """The year range one request asks for. Without years, the recent window ending this year.

    Raises
    ------
    InvalidRequest
        When the range ends in the future beyond this year or starts after it ends.
    """
    end = params.end_year if params.end_year is not None else today.year
    start = params.start_year if params.start_year is not None else end - window_years + 1
    if start > end:
        raise InvalidRequest(f"start year {start} is after end year {end}")
    if start > today.year:
        raise InvalidRequest(f"start year {start} is in the future")
    return start, min(end, today.year)


def year_windows(start: int, end: int, max_years: int) -> list[tuple[int, int]]:
    """Split [start, end] into windows of at most ``max_years`` years, newest first.

    >>> year_windows(1990, 2024, 20)
    [(2005, 2024), (1990, 2004)]
    """
    if max_years < 1 or start > end:
        raise ValueError(f"cannot split {start}..{end} into windows of {max_years} years")
    windows = []
    upper = end
    while upper >= start:
        lower = max(start, upper - max_years + 1)
        windows.append((lower, upper))
        upper = lower - 1
    return windows


@dataclass(frozen=True)
class SeriesWant:
    """One series of a batch, with the years its request asks for."""

    series_id: str
    start_year: int
    end_year: int
    catalog: bool = False


@dataclass(frozen=True)
class BlsQuery:
    """One POST to the BLS API: a chunk of series over one year window of the range they asked for."""

    series_ids: tuple[str, ...]
    start_year: int
    end_year: int
    catalog: bool = False
    range_start: int | None = None  # the years the series' requests asked for (the window lies inside)
    range_end: int | None = None

    def wants(self) -> list[SeriesWant]:
        start = self.start_year if self.range_start is None else self.range_start
        end = self.end_year if self.range_end is None else self.range_end
        return [SeriesWant(sid, start, end, self.catalog) for sid in self.series_ids]

    def payload(self) -> dict[str, Any]:
        """The POST body, without the registration key (the adapter adds it, so this can be logged)."""
        body: dict[str, Any] = {
            "seriesid": list(self.series_ids),
            "startyear": str(self.start_year),
            "endyear": str(self.end_year),
        }
        if self.catalog:
            body["catalog"] = True
        return body


def chunked(items: Sequence[str], size: int) -> Iterator[tuple[str, ...]]:
    for start in range(0, len(items), size):
        yield tuple(items[start : start + size])


def plan_bls_queries(wants: Iterable[SeriesWant], limits: BlsLimits) -> list[BlsQuery]:
    """Coalesce a batch's series into as few queries as the limits allow.

    Series asking for the same years (and the same catalog option) share queries: ceil(N / series limit) chunks,
    each repeated once per year window. N series over one window cost ceil(N/50) calls with a key, ceil(N/25)
    without.
    """
    groups: dict[tuple[int, int, bool], list[str]] = {}
    for want in wants:
        members = groups.setdefault((want.start_year, want.end_year, want.catalog), [])
        if want.series_id not in members:
            members.append(want.series_id)
    queries = []
    for (start, end, catalog), series_ids in sorted(groups.items()):
        windows = year_windows(start, end, limits.years_per_query)
        for chunk in chunked(sorted(series_ids), limits.series_per_query):
            queries.extend(BlsQuery(chunk, lower, upper, catalog, start, end) for lower, upper in windows)
    return queries


# ---------------------------------------------------------------------------------------------------------------
# BLS API v2: reading a response
# ---------------------------------------------------------------------------------------------------------------

_NAMES_A_SERIES = re.compile(r"\bSeries ([A-Z0-9]{3,30})\b")
_DOES_NOT_EXIST = re.compile(r"\b(series does not exist|invalid series)\b", re.I)


@dataclass(frozen=True)
class BlsResponse:
    status: str
    messages: tuple[str, ...]
    series: dict[str, dict[str, Any]]
    response_time: int | None = None


def parse_bls_response(body: bytes) -> BlsResponse:
    """Read a v2 response body.

    Raises
    ------
    BadPayload
        When the body is not a JSON object with a ``status`` (an HTML error page, a truncated body).
    """
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise BadPayload(f"BLS API answered a body that is not JSON ({len(body)} bytes): {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("status"), str):
        raise BadPayload("BLS API answered JSON without a status")
    messages = document.get("message") or []
    if not isinstance(messages, list):
        messages = [str(messages)]
    results = document.get("Results") or {}
    series_list = results.get("series") if isinstance(results, dict) else None
    series: dict[str, dict[str, Any]] = {}
    for item in series_list or []:
        if isinstance(item, dict) and isinstance(item.get("seriesID"), str):
            if not isinstance(item.get("data", []), list):
                raise BadPayload(f"series {item['seriesID']} has a data field that is not a list")
            series[item["seriesID"]] = item
    response_time = document.get("responseTime")
    return BlsResponse(
        status=document["status"],
        messages=tuple(str(m) for m in messages),
        series=series,
        response_time=response_time if isinstance(response_time, int) else None,
    )


def messages_about(series_id: str, messages: Iterable[str]) -> list[str]:
    """The messages of a response that concern one series: those naming it, and those naming no series at all
    (a year-range warning applies to every series of the query)."""
    selected = []
    for text in messages:
        named = set(_NAMES_A_SERIES.findall(text))
        if not named or series_id in named:
            selected.append(text)
    return selected


def series_does_not_exist(series_id: str, messages: Iterable[str]) -> str | None:
    """The BLS message saying this series does not exist, if there is one."""
    for text in messages_about(series_id, messages):
        if _DOES_NOT_EXIST.search(text) and series_id in _NAMES_A_SERIES.findall(text):
            return text
    return None


def _observation_key(item: dict[str, Any]) -> tuple[str, str]:
    return str(item.get("year", "")), str(item.get("period", ""))


def merge_series(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One series object from the answers of several year windows: observations united, newest first.

    The series object keeps the keys BLS sent (``seriesID``, ``catalog``, ...); only ``data`` is merged.
    """
    if not parts:
        raise ValueError("nothing to merge")
    merged = {k: v for k, v in parts[0].items() if k != "data"}
    for part in parts[1:]:
        for key, value in part.items():
            merged.setdefault(key, value)
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for part in parts:
        for item in part.get("data") or []:
            seen.setdefault(_observation_key(item), item)
    merged["data"] = sorted(seen.values(), key=_observation_key, reverse=True)
    return merged


def series_observations(series: dict[str, Any]) -> int:
    """The number of observations of a series object."""
    data = series.get("data")
    return len(data) if isinstance(data, list) else 0


def series_years(series: dict[str, Any], start: int, end: int) -> tuple[list[int], list[int]]:
    """(the years a series object answers inside ``start..end``, those outside it) - a BLS answer holds only the
    years asked for; anything else is not the answer to this request."""
    years = set()
    for item in series.get("data") or []:
        try:
            years.add(int(item.get("year")))
        except (TypeError, ValueError, AttributeError):
            continue
    return sorted(y for y in years if start <= y <= end), sorted(y for y in years if not start <= y <= end)


def echoes_secret(body: bytes, secret: str | None) -> bool:
    """Whether a response body carries a secret we sent (in any letter case: BLS may echo a key in a message)."""
    return bool(secret) and secret.lower().encode() in body.lower()


def series_content_sha256(series: dict[str, Any]) -> str:
    """The change-detection hash of a series: its values only, not the response's timing, its messages or the
    other series it shares a response with. Across year windows, hash the merged series (``merge_series``)."""
    return canonical_sha256(series)


# ---------------------------------------------------------------------------------------------------------------
# BLS bulk: the directory listing and the mirror's sync plan
# ---------------------------------------------------------------------------------------------------------------

# download.bls.gov is IIS: "<date> <time> <size|<dir>> <A HREF="...">name</A><br>", possibly all on one line.
_LISTING_ENTRY = re.compile(
    r"(?:(?P<date>\d{1,2}/\d{1,2}/\d{4})\s+(?P<time>\d{1,2}:\d{2}\s*[AP]M)\s+(?P<size>\d+|&lt;dir&gt;|<dir>)\s*)?"
    r"<a\s+href\s*=\s*\"(?P<href>[^\"]+)\"\s*>(?P<name>[^<]+)</a>",
    re.I,
)


@dataclass(frozen=True)
class ListedFile:
    name: str
    url: str
    size: int | None
    last_modified: str | None  # as the listing prints it, e.g. "8/6/2026 8:30 AM"


def parse_bls_listing(page: str, listing_url: str, survey: str) -> list[ListedFile]:
    """The files of a BLS bulk directory listing.

    Only plain files of that survey directory count: the parent link, sub-directories, links elsewhere and names
    that are not ``{survey}.*`` are skipped.

    Raises
    ------
    BadPayload
        When the page lists no file of the survey: a changed format or an error page must never read as
        "upstream is empty" (which would delete the mirror).
    """
    base = urlsplit(listing_url)
    directory = base.path if base.path.endswith("/") else base.path + "/"
    name_pattern = re.compile(rf"^{re.escape(survey)}\.[A-Za-z0-9_.\-]{{1,120}}$")
    files: dict[str, ListedFile] = {}
    for match in _LISTING_ENTRY.finditer(page):
        size_text = match.group("size")
        if size_text is not None and not size_text.isdigit():
            continue  # a sub-directory
        url = urljoin(listing_url, html.unescape(match.group("href")))
        target = urlsplit(url)
        name = html.unescape(match.group("name")).strip()
        if (target.scheme, target.netloc) != (base.scheme, base.netloc) or target.path != directory + name:
            continue
        if not name_pattern.fullmatch(name) or ".." in name:
            continue
        stamp = f"{match.group('date')} {' '.join(match.group('time').split())}" if match.group("date") else None
        files[name] = ListedFile(name=name, url=url, size=int(size_text) if size_text else None, last_modified=stamp)
    if not files:
        raise BadPayload(f"the listing at {listing_url} names no {survey}.* file ({len(page)} characters)")
    return sorted(files.values(), key=lambda f: f.name)


@dataclass(frozen=True)
class SyncPlan:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def to_write(self) -> list[str]:
        return sorted(self.added + self.changed)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.changed or self.deleted)


def plan_sync(upstream: dict[str, str], mirrored: dict[str, str | None]) -> SyncPlan:
    """Compare upstream files with the mirror, both as ``name -> sha256``.

    A mirrored file whose hash is unknown (None) counts as changed, so it is written once and gets a hash.
    """
    added = sorted(n for n in upstream if n not in mirrored)
    changed = sorted(n for n in upstream if n in mirrored and mirrored[n] != upstream[n])
    unchanged = sorted(n for n in upstream if n in mirrored and mirrored[n] == upstream[n])
    deleted = sorted(n for n in mirrored if n not in upstream)
    return SyncPlan(added=added, changed=changed, unchanged=unchanged, deleted=deleted)


def mirror_digest(files: dict[str, str]) -> str:
    """The content hash of a whole mirrored directory (``name -> sha256``)."""
    return sha256_hex("".join(f"{name}\t{files[name]}\n" for name in sorted(files)).encode())


def bulk_file_role(survey: str, name: str) -> Literal["data", "metadata", "mapping"]:
    """``pr.data.*`` are observations; ``pr.txt`` and ``pr.contacts`` are documentation; the rest map codes."""
    if name.startswith(f"{survey}.data."):
        return "data"
    if name in (f"{survey}.txt", f"{survey}.contacts"):
        return "metadata"
    return "mapping"


def count_lines(data: bytes) -> int:
    """Data rows of a tab-separated bulk file: non-empty lines after the header."""
    lines = [line for line in data.splitlines() if line.strip()]
    return max(0, len(lines) - 1)


# ---------------------------------------------------------------------------------------------------------------
# Socrata
# ---------------------------------------------------------------------------------------------------------------


def socrata_page_params(offset: int, limit: int) -> dict[str, str]:
    """Stable paging: ordered by the row id, so pages neither skip nor repeat rows; each row carries its ``:id``
    (a system field SODA adds when asked), so the extractor can prove no row came twice."""
    return {"$select": ":id,*", "$order": ":id", "$limit": str(limit), "$offset": str(offset)}


def socrata_columns(views: bytes) -> list[tuple[str, str]]:
    """``(fieldName, dataTypeName)`` of a dataset's columns, from ``/api/views/{id}.json``.

    Raises
    ------
    BadPayload
        When the metadata is not JSON or lists no columns.
    """
    try:
        document = json.loads(views)
    except ValueError as exc:
        raise BadPayload(f"dataset metadata is not JSON: {exc}") from exc
    columns = document.get("columns") if isinstance(document, dict) else None
    if not isinstance(columns, list) or not columns:
        raise BadPayload("dataset metadata lists no columns")
    return [(str(c.get("fieldName")), str(c.get("dataTypeName"))) for c in columns if isinstance(c, dict)]


def socrata_content_sha256(page_hashes: Sequence[str], columns: Sequence[tuple[str, str]]) -> str:
    """Change detection for a dataset: its rows and its column schema, not the metadata's volatile counters."""
    return canonical_sha256({"pages": list(page_hashes), "columns": [list(c) for c in columns]})


# ---------------------------------------------------------------------------------------------------------------
# DataUSA
# ---------------------------------------------------------------------------------------------------------------

# The current endpoint (tesseract, jsonrecords) and the legacy one (/api/data), per dataset id.
DATAUSA_QUERIES: dict[str, dict[str, dict[str, str]]] = {
    "population": {
        "tesseract": {
            "cube": "acs_yg_total_population_1",
            "drilldowns": "Year,Nation",
            "locale": "en",
            "measures": "Population",
        },
        "legacy": {"drilldowns": "Nation", "measures": "Population"},
    }
}


def datausa_flavour(url: str) -> Literal["tesseract", "legacy"]:
    return "tesseract" if "tesseract" in urlsplit(url).path else "legacy"


def datausa_params(dataset: str, url: str) -> dict[str, str]:
    """The query parameters of a DataUSA dataset for the configured endpoint.

    Raises
    ------
    InvalidRequest
        When no query is defined for that dataset id.
    """
    if dataset not in DATAUSA_QUERIES:
        raise InvalidRequest(f"no DataUSA query is defined for dataset {dataset!r} (known: {sorted(DATAUSA_QUERIES)})")
    return dict(DATAUSA_QUERIES[dataset][datausa_flavour(url)])


@dataclass(frozen=True)
class DataUsaShape:
    shape: Literal["tesseract", "legacy", "unknown"]
    records: int | None
    warnings: tuple[str, ...] = ()
    years: tuple[int, ...] = ()  # the years answered (the plausibility guard compares them with the last landing)


def _years_of(rows: list[Any]) -> tuple[int, ...]:
    """The distinct years of DataUSA rows (``Year`` is a number in tesseract, text in the legacy shape)."""
    years = set()
    for row in rows:
        value = row.get("Year", row.get("ID Year")) if isinstance(row, dict) else None
        try:
            years.add(int(value))
        except (TypeError, ValueError):
            continue
    return tuple(sorted(years))


def datausa_shape(body: bytes) -> DataUsaShape:
    """Recognise a DataUSA response: tesseract ``jsonrecords`` (``columns`` + ``data``) or legacy (``data`` +
    ``source``). An unknown JSON shape is landed anyway, with a warning, for the transformer to quarantine.

    Raises
    ------
    BadPayload
        When the body is not JSON at all.
    """
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise BadPayload(f"DataUSA answered a body that is not JSON ({len(body)} bytes): {exc}") from exc
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        rows = document["data"]
        if isinstance(document.get("columns"), list):
            return DataUsaShape("tesseract", len(rows), years=_years_of(rows))
        if "source" in document:
            return DataUsaShape("legacy", len(rows), years=_years_of(rows))
    return DataUsaShape("unknown", None, ("DataUSA response has neither the tesseract nor the legacy shape",))


# ---------------------------------------------------------------------------------------------------------------
# Queue behaviour
# ---------------------------------------------------------------------------------------------------------------

DEFERRAL_BASE_SECONDS = 15 * 60
SQS_MAX_VISIBILITY_SECONDS = 12 * 3600
# SQS refuses a visibility change that would keep a message hidden more than 12 h after the receive it belongs to,
# and by the time the extractor defers, that receive is already up to the batching window plus the function's
# timeout old (5 s + 300 s): the cap leaves 15 minutes for that.
DEFERRAL_HELD_ALLOWANCE_SECONDS = 15 * 60
DEFERRAL_CAP_SECONDS = SQS_MAX_VISIBILITY_SECONDS - DEFERRAL_HELD_ALLOWANCE_SECONDS


def deferral_seconds(receive_count: int, base: int = DEFERRAL_BASE_SECONDS, cap: int = DEFERRAL_CAP_SECONDS) -> int:
    """The visibility timeout of a quota-limited message: 15 min on the first receive, doubling, capped at 11 h 45.

    Parameters
    ----------
    receive_count
        The message's ApproximateReceiveCount (1 on the first receive).

    Returns
    -------
    Seconds; with the time the current receive has already been held, never past SQS's 12 h from that receive.
    """
    return int(min(cap, base * 2 ** max(0, receive_count - 1)))


def queue_name_of(arn: str) -> tuple[str, str]:
    """``(account, queue name)`` of an SQS queue ARN."""
    pieces = arn.split(":")
    if len(pieces) != 6 or pieces[2] != "sqs":
        raise ValueError(f"{arn!r} is not an SQS queue ARN")
    return pieces[4], pieces[5]
