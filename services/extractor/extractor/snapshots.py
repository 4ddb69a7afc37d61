"""Snapshot sources: DataUSA population (one object) and Socrata datasets (paged, with their metadata).

Both return a ``Fetched`` for the lander: raw bodies exactly as received, spooled, with their hashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin

from aws_lambda_powertools import Logger

from datalake.contracts import ExtractRequest
from extractor.domain import (
    datausa_params,
    datausa_shape,
    socrata_columns,
    socrata_content_sha256,
    socrata_page_params,
)
from extractor.errors import BadPayload, DatasetNotFound, PayloadTooLarge, SourceUnavailable, bad_payload_kept
from extractor.http import Download, HttpClient, redacted_url
from extractor.landing import Fetched, FetchedPart
from extractor.proof import (
    IdLedger,
    IncompleteSnapshot,
    SocrataEvidence,
    check_socrata,
    now_utc,
    scan_rows,
    socrata_count,
    socrata_count_params,
)
from extractor.telemetry import telemetry

logger = Logger(child=True)


def _checked(download: Download, source: str, what: str) -> Download:
    telemetry.count("ApiCalls", source=source)
    if download.retries:
        telemetry.count("HttpRetries", download.retries, source=source)
    if download.ok:
        return download
    download.close()
    if download.status == 404:
        raise DatasetNotFound(f"{what} does not exist (404 at {redacted_url(download.url)})")
    raise SourceUnavailable(f"{what}: HTTP {download.status} after retries")


def _utf8(data: bytes, what: str) -> str:
    """Raises BadPayload (with the reason) for bytes that are not UTF-8 text, as for a body that is not JSON."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayload(f"{what} is not UTF-8 text: {exc}") from exc


def fetch_datausa(http: HttpClient, url: str, request: ExtractRequest, keep_bad: bool = False) -> Fetched:
    """The DataUSA response for one dataset (population), tesseract or legacy endpoint alike.

    ``keep_bad``: a body that is not the expected JSON is returned for landing as it is (no records), with the
    reason as a warning, instead of raising BadPayload.

    Raises
    ------
    InvalidRequest
        When no query is defined for the dataset id.
    DatasetNotFound
        On a 404.
    SourceUnavailable, BadPayload, TimeBudgetExceeded
        When the source fails or answers something that is not JSON.
    """
    params = datausa_params(request.dataset, url)
    fetched_at = now_utc()
    download = _checked(http.fetch("GET", url, params=params), "datausa", f"DataUSA {request.dataset}")
    source_url = f"{redacted_url(url)}?{urlencode(params)}"
    measures: dict[str, Any] = {}
    try:
        shape = datausa_shape(download.read())
        records, warnings = shape.records, list(shape.warnings)
        if shape.years:
            measures = {"rows": shape.records, "years": list(shape.years)}
    except BadPayload as exc:
        if not keep_bad:
            download.close()
            raise
        records, warnings = None, [bad_payload_kept(exc, "data")]
    except Exception:
        download.close()
        raise
    return Fetched(
        request=request,
        source_url=source_url,
        content_sha256=download.sha256,
        parts=[FetchedPart.of_download(download, "data", records, source_url)],
        warnings=warnings,
        fetched_at=fetched_at,
        measures=measures,
    )


def _socrata_columns(views: Download, keep_bad: bool, warnings: list[str]) -> list[tuple[str, str]]:
    """The columns the dataset's metadata lists. With ``keep_bad``, metadata that is not JSON or lists no columns
    gives none and a warning: the rows are still fetched and landed, and the transformer quarantines the landing.
    """
    try:
        return socrata_columns(views.read())
    except BadPayload as exc:
        if not keep_bad:
            views.close()
            raise
        warnings.append(bad_payload_kept(exc, "metadata"))
        return []
    except Exception:
        views.close()
        raise


def fetch_socrata(
    http: HttpClient,
    base_url: str,
    request: ExtractRequest,
    page_size: int,
    app_token: str | None,
    max_bytes: int,
    keep_bad: bool = False,
) -> Fetched:
    """Every row of a Socrata dataset, page by page (``$order=:id``, ``$limit``, ``$offset``), plus its metadata,
    proven whole (``extractor.proof.check_socrata``): the row count asked before and after paging agrees with the
    rows received, each row carries a ``:id`` and no id comes twice, and paging ends at the first short page.

    Each page is spooled as it arrives and scanned without building a list of rows, so memory holds one page at
    most (and 8 bytes per row for the ids). ``keep_bad`` (the request's last receive): a page that is not a JSON
    array (of UTF-8 text) is kept as it is, as the last page, and metadata that is not JSON or lists no columns is
    kept as it is (the rows are still fetched), each with the reason as a warning; a snapshot that cannot be proven
    whole is returned with ``incomplete`` set, to be landed raw and held.

    Raises
    ------
    DatasetNotFound
        When the dataset does not exist (404 on its metadata or its rows).
    IncompleteSnapshot, SnapshotMoved
        When the evidence disproves wholeness (retried; held on the last receive) or the dataset changed while paged.
    SourceUnavailable, BadPayload, TimeBudgetExceeded, PayloadTooLarge
        When a page fails, is not a JSON array, the budget runs out or the dataset outgrows ``max_bytes``.
    """
    dataset = request.dataset
    fetched_at = now_utc()
    headers = {"X-App-Token": app_token} if app_token else None
    base = base_url if base_url.endswith("/") else base_url + "/"
    views_url = urljoin(base, f"api/views/{dataset}.json")
    rows_url = urljoin(base, f"resource/{dataset}.json")
    what = f"Socrata dataset {dataset}"
    warnings: list[str] = []
    views = _checked(http.fetch("GET", views_url, headers=headers), "socrata", what)
    metadata = FetchedPart.of_download(views, "metadata", None, views_url)
    paged: _Paged | None = None
    try:
        columns = _socrata_columns(views, keep_bad, warnings)
        count_before = _socrata_row_count(http, rows_url, headers, what)
        paged = _page_through(http, rows_url, headers, page_size, max_bytes - views.size, keep_bad, warnings, what)
        evidence = paged.evidence(count_before, _socrata_row_count(http, rows_url, headers, what), page_size)
        incomplete = _prove(evidence, keep_bad) if paged.complete else None
    except Exception:
        metadata.close()
        if paged is not None:
            paged.close()
        raise
    logger.info(
        "Socrata dataset fetched",
        extra={"rows": paged.rows, "pages": len(paged.pages), "columns": len(columns), "counted": count_before},
    )
    return Fetched(
        request=request,
        source_url=rows_url,
        content_sha256=socrata_content_sha256([p.sha256 for p in paged.pages], columns),
        parts=[*paged.pages, metadata],
        warnings=warnings,
        paged=True,
        fetched_at=fetched_at,
        proof=evidence.as_proof() if paged.complete else {},
        measures={"rows": paged.rows} if paged.complete and incomplete is None else {},
        incomplete=incomplete,
    )


@dataclass
class _Paged:
    """The pages of one dataset as received, and what they showed."""

    pages: list[FetchedPart] = field(default_factory=list)
    ids: IdLedger = field(default_factory=IdLedger)
    rows: int = 0
    without_id: int = 0
    last_rows: int = 0
    complete: bool = True  # False: a page was not a JSON array (kept as it is, for quarantine): no proof is possible

    def evidence(self, count_before: int, count_after: int, page_size: int) -> SocrataEvidence:
        return SocrataEvidence(
            count_before=count_before,
            count_after=count_after,
            rows=self.rows,
            duplicate_ids=self.ids.duplicates(),
            rows_without_id=self.without_id,
            page_size=page_size,
            last_page_rows=self.last_rows,
            pages=len(self.pages),
        )

    def close(self) -> None:
        for page in self.pages:
            page.close()


def _page_through(
    http: HttpClient,
    rows_url: str,
    headers: dict[str, str] | None,
    page_size: int,
    max_bytes: int,
    keep_bad: bool,
    warnings: list[str],
    what: str,
) -> _Paged:
    """Page until the first short (or empty) page, scanning each page's rows and ids as it arrives."""
    paged, total = _Paged(), 0
    try:
        while True:
            params = socrata_page_params(paged.rows, page_size)
            page = _checked(http.fetch("GET", rows_url, params=params, headers=headers), "socrata", what)
            page_url = f"{rows_url}?{urlencode(params)}"
            try:
                scan = scan_rows(_utf8(page.read(), f"{what}, page at offset {paged.rows}"))
            except BadPayload as exc:
                if not keep_bad:
                    page.close()
                    raise
                warnings.append(bad_payload_kept(exc, f"page at offset {paged.rows}"))
                paged.pages.append(FetchedPart.of_download(page, "data", None, page_url))
                paged.complete = False
                return paged
            except Exception:
                page.close()
                raise
            if scan.rows == 0 and paged.pages:
                page.close()  # an empty page after a full one: the end
                paged.last_rows = 0
                return paged
            for row_id in scan.ids:
                paged.ids.add(row_id)
            paged.without_id += scan.without_id
            paged.pages.append(FetchedPart.of_download(page, "data", scan.rows, page_url))
            paged.rows += scan.rows
            paged.last_rows = scan.rows
            total += page.size
            if total > max_bytes:
                raise PayloadTooLarge(f"{what} is larger than the {max_bytes} bytes a landing may hold")
            if scan.rows < page_size:
                return paged
    except Exception:
        paged.close()
        raise


def _socrata_row_count(http: HttpClient, rows_url: str, headers: dict[str, str] | None, what: str) -> int:
    """The dataset's row count (``$select=count(*)``), asked with the same filter as the pages (none)."""
    download = _checked(http.fetch("GET", rows_url, params=socrata_count_params(), headers=headers), "socrata", what)
    try:
        return socrata_count(download.read())
    finally:
        download.close()


def _prove(evidence: SocrataEvidence, keep_bad: bool) -> IncompleteSnapshot | None:
    """Raise when the evidence disproves wholeness; on the last receive, return it instead (the fetch is held)."""
    try:
        check_socrata(evidence)
    except IncompleteSnapshot as exc:
        if not keep_bad:
            raise
        logger.warning("snapshot not proven whole on the last receive; landed raw and held", extra={"reason": str(exc)})
        return exc
    return None
