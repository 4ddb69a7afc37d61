"""Snapshot sources: DataUSA population (one object) and Socrata datasets (paged, with their metadata).

Both return a ``Fetched`` for the lander: raw bodies exactly as received, spooled, with their hashes.
"""

from __future__ import annotations

from urllib.parse import urlencode, urljoin

from aws_lambda_powertools import Logger

from datalake.contracts import ExtractRequest
from extractor.domain import (
    count_json_array,
    datausa_params,
    datausa_shape,
    socrata_columns,
    socrata_content_sha256,
    socrata_page_params,
)
from extractor.errors import BadPayload, DatasetNotFound, PayloadTooLarge, SourceUnavailable, bad_payload_kept
from extractor.http import Download, HttpClient, redacted_url
from extractor.landing import Fetched, FetchedPart
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
    download = _checked(http.fetch("GET", url, params=params), "datausa", f"DataUSA {request.dataset}")
    source_url = f"{redacted_url(url)}?{urlencode(params)}"
    try:
        shape = datausa_shape(download.read())
        records, warnings = shape.records, list(shape.warnings)
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
    """Every row of a Socrata dataset, page by page (``$order=:id``, ``$limit``, ``$offset``), plus its metadata.

    Each page is spooled as it arrives and counted without building a list of rows, so memory holds one page at
    most. Paging stops at the first short page. ``keep_bad``: a page that is not a JSON array (of UTF-8 text) is
    kept as it is, as the last page, and metadata that is not JSON or lists no columns is kept as it is (the rows
    are still fetched), each with the reason as a warning, instead of raising BadPayload.

    Raises
    ------
    DatasetNotFound
        When the dataset does not exist (404 on its metadata or its rows).
    SourceUnavailable, BadPayload, TimeBudgetExceeded, PayloadTooLarge
        When a page fails, is not a JSON array, the budget runs out or the dataset outgrows ``max_bytes``.
    """
    dataset = request.dataset
    headers = {"X-App-Token": app_token} if app_token else None
    base = base_url if base_url.endswith("/") else base_url + "/"
    views_url = urljoin(base, f"api/views/{dataset}.json")
    rows_url = urljoin(base, f"resource/{dataset}.json")
    parts: list[FetchedPart] = []
    warnings: list[str] = []
    try:
        views = _checked(http.fetch("GET", views_url, headers=headers), "socrata", f"Socrata dataset {dataset}")
        columns = _socrata_columns(views, keep_bad, warnings)
        metadata = FetchedPart.of_download(views, "metadata", None, views_url)
        pages: list[FetchedPart] = []
        parts.append(metadata)
        offset, total = 0, views.size
        while True:
            params = socrata_page_params(offset, page_size)
            page = _checked(
                http.fetch("GET", rows_url, params=params, headers=headers), "socrata", f"Socrata dataset {dataset}"
            )
            page_url = f"{rows_url}?{urlencode(params)}"
            try:
                rows = count_json_array(_utf8(page.read(), f"Socrata dataset {dataset}, page at offset {offset}"))
            except BadPayload as exc:
                if not keep_bad:
                    page.close()
                    raise
                warnings.append(bad_payload_kept(exc, f"page at offset {offset}"))
                pages.append(FetchedPart.of_download(page, "data", None, page_url))
                parts.insert(len(pages) - 1, pages[-1])
                break
            except Exception:
                page.close()
                raise
            if rows == 0 and pages:
                page.close()  # an empty page after a full one: the end
                break
            pages.append(FetchedPart.of_download(page, "data", rows, page_url))
            parts.insert(len(pages) - 1, pages[-1])
            offset += rows
            total += page.size
            if total > max_bytes:
                raise PayloadTooLarge(f"Socrata dataset {dataset} is larger than {max_bytes} bytes")
            if rows < page_size:
                break
    except Exception:
        for part in parts:
            part.close()
        raise
    logger.info("Socrata dataset fetched", extra={"rows": offset, "pages": len(pages), "columns": len(columns)})
    return Fetched(
        request=request,
        source_url=rows_url,
        content_sha256=socrata_content_sha256([p.sha256 for p in pages], columns),
        parts=parts,
        warnings=warnings,
        paged=True,
    )
