"""Snapshot sources: DataUSA population (one object), and the checked download every snapshot connector uses.

``fetch_datausa`` returns a ``Fetched`` for the lander: the raw body exactly as received, spooled, with its hash.
Socrata datasets, paged across invocations, are ``extractor.socrata``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aws_lambda_powertools import Logger

from datalake.contracts import ExtractRequest
from extractor.domain import (
    datausa_params,
    datausa_shape,
)
from extractor.errors import BadPayload, DatasetNotFound, SourceUnavailable, bad_payload_kept
from extractor.http import Download, HttpClient, redacted_url
from extractor.landing import Fetched, FetchedPart
from extractor.proof import (
    now_utc,
)
from extractor.telemetry import telemetry

logger = Logger(child=True)


def checked(download: Download, source: str, what: str) -> Download:
    telemetry.count("ApiCalls", source=source)
    if download.retries:
        telemetry.count("HttpRetries", download.retries, source=source)
    if download.ok:
        return download
    download.close()
    if download.status == 404:
        raise DatasetNotFound(f"{what} does not exist (404 at {redacted_url(download.url)})")
    raise SourceUnavailable(f"{what}: HTTP {download.status} after retries")


def utf8(data: bytes, what: str) -> str:
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
    download = checked(http.fetch("GET", url, params=params), "datausa", f"DataUSA {request.dataset}")
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
