"""A bulk survey is downloaded whole before any file is written: one that cannot fit the function's /tmp is refused
before the first download, with a reason that names the fix, instead of failing half way on every receive."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime

import pytest

from datalake.contracts import ExtractParams, ExtractRequest, Source
from extractor.bls_bulk import BulkMirror, free_tmp_bytes
from extractor.errors import PayloadTooLarge, PermanentFailure
from extractor.http import Download
from localrun.replay import bls_listing_html

LISTING_URL = "https://download.bls.gov/pub/time.series/la/"
MODIFIED = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
# la, local area unemployment: the real survey's data files run to hundreds of megabytes each
LA_FILES = [("la.data.0.CurrentU00-04", 310_000_000), ("la.data.1.CurrentS", 95_000_000), ("la.series", 60_000_000)]


class ListingOnly:
    """An HTTP client that answers the survey's listing and records every other request (none may be made)."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def fetch(self, method: str, url: str) -> Download:
        self.requests.append(url)
        body = bls_listing_html("la", [(name, size, MODIFIED) for name, size in LA_FILES]).encode()
        if url != LISTING_URL:
            raise AssertionError(f"a file was downloaded: {url}")
        return Download(url, 200, {}, io.BytesIO(body), hashlib.sha256(body).hexdigest(), len(body), body.count(b"\n"))


def la_request() -> ExtractRequest:
    return ExtractRequest(
        run_id="20261203T080000Z-1a2b3c4d",
        source=Source.BLS_BULK,
        dataset="la",
        params=ExtractParams(),
        requested_at=MODIFIED,
    )


def mirror(http: ListingOnly, free: int) -> BulkMirror:
    """The mirror with no lake or state: the refusal must come before either is touched."""
    return BulkMirror(
        http, "https://download.bls.gov/pub/time.series/", None, None, None, lease=object(), free_tmp=lambda: free
    )


def test_a_survey_larger_than_the_free_tmp_is_refused_before_any_download():
    http = ListingOnly()

    with pytest.raises(PayloadTooLarge) as refused:
        mirror(http, free=400_000_000).fetch(la_request())

    assert isinstance(refused.value, PermanentFailure)  # dead-lettered with its reason, not retried in vain
    assert str(refused.value) == (
        "the la survey lists 465 MB of files and the function has 400 MB free in /tmp: every file is downloaded "
        "before any is written. Raise the ExtractorFunction's EphemeralStorage in template.yaml (up to 10,240 MB)"
    )
    assert http.requests == [LISTING_URL]


def test_a_survey_that_fits_goes_on_to_its_downloads():
    http = ListingOnly()

    with pytest.raises(AssertionError, match="a file was downloaded"):
        mirror(http, free=2_048_000_000).fetch(la_request())

    assert http.requests[0] == LISTING_URL and len(http.requests) == 2


def test_the_free_space_probe_reads_the_temporary_folder():
    assert free_tmp_bytes() > 0
