"""The extractor's readers of source answers, fed anything: a result, or ``BadPayload`` with a reason. Never another
exception (which would fail the record without a reason), and a listing never names a file outside its folder."""

from __future__ import annotations

import json

from hypothesis import example, given
from hypothesis import strategies as st

from extractor.domain import (
    datausa_shape,
    parse_bls_listing,
    parse_bls_response,
    socrata_columns,
)
from extractor.errors import BadPayload
from extractor.proof import scan_rows
from localrun.replay import bls_listing_html
from tests.property.strategies import (
    bls_api_document,
    datausa_document,
    json_values,
    payloads,
    socrata_page,
    socrata_views,
    to_bytes,
)

LISTING_URL = "https://download.bls.gov/pub/time.series/pr/"


@given(body=payloads(bls_api_document("LNS14000000")))
@example(body=b'{"status": "REQUEST_SUCCEEDED", "Results": {"series": [{"seriesID": "X", "data": {}}]}}')
@example(body=b'{"status": "REQUEST_SUCCEEDED", "message": "one string", "Results": []}')
def test_a_bls_api_answer_is_read_or_refused_with_a_reason(body):
    try:
        response = parse_bls_response(body)
    except BadPayload as exc:
        assert str(exc)
        return
    assert isinstance(response.status, str)
    assert all(isinstance(m, str) for m in response.messages)
    for series_id, series in response.series.items():
        assert series["seriesID"] == series_id and isinstance(series.get("data", []), list)


hrefs = st.sampled_from(
    [
        "/pub/time.series/pr/pr.data.0.Current",
        "pr.series",
        "../ce/ce.data.0.AllCESSeries",
        "/pub/time.series/pr/../../../etc/pr.passwd",
        "https://evil.example/pub/time.series/pr/pr.data.1.AllData",
        "/pub/time.series/pr/sub/pr.txt",
        "/pub/time.series/pr/pr.%2e%2e",
        "/pub/time.series/pr/",
        "javascript:alert(1)",
    ]
)
names = st.one_of(
    st.sampled_from(["pr.data.0.Current", "pr.series", "..", "pr..", "pr.a/b", "ce.data", "pr.ünï", "pr." + "x" * 130]),
    st.text(max_size=15),
)


@given(entries=st.lists(st.tuples(hrefs, names, st.integers(0, 10**9)), max_size=8), noise=st.text(max_size=60))
def test_a_listing_names_only_files_of_its_own_folder(entries, noise):
    rows = "".join(f'1/2/2026  8:30 AM {size:>12} <A HREF="{href}">{name}</A><br>' for href, name, size in entries)
    page = f"<html><body><pre>{noise}{rows}</pre></body></html>"
    try:
        files = parse_bls_listing(page, LISTING_URL, "pr")
    except BadPayload as exc:
        assert "names no pr.* file" in str(exc)  # never "empty upstream": that would delete the mirror
        return
    for listed in files:
        assert listed.name.startswith("pr.") and "/" not in listed.name and ".." not in listed.name
        assert listed.url == LISTING_URL + listed.name


def test_the_replays_own_listing_is_read_back_exactly():
    from datetime import UTC, datetime

    files = [
        ("pr.data.0.Current", 2_000_000, datetime(2026, 8, 6, 8, 30, tzinfo=UTC)),
        ("pr.series", 40_000, datetime(2026, 8, 6, tzinfo=UTC)),
    ]
    listed = parse_bls_listing(bls_listing_html("pr", files), LISTING_URL, "pr")
    assert [(f.name, f.size) for f in listed] == [("pr.data.0.Current", 2_000_000), ("pr.series", 40_000)]


@given(document=st.one_of(socrata_page, json_values), cut=st.integers(min_value=0, max_value=400))
@example(document=[{"a": "]"}, {"b": "[,"}], cut=400)
@example(document=[], cut=400)
def test_a_socrata_page_is_counted_exactly_or_refused(document, cut):
    text = json.dumps(document, ensure_ascii=False)
    sliced = text[:cut]
    try:
        count = scan_count(sliced)
    except BadPayload as exc:
        assert str(exc)
        try:
            parsed = json.loads(sliced)
        except ValueError:
            return
        assert not isinstance(parsed, list)  # refused only when it is not one complete array
        return
    assert count == len(json.loads(sliced))


@given(body=payloads(socrata_views))
def test_socrata_metadata_gives_its_columns_or_a_reason(body):
    try:
        columns = socrata_columns(body)
    except BadPayload as exc:
        assert "metadata" in str(exc)
        return
    assert columns and all(isinstance(name, str) and isinstance(kind, str) for name, kind in columns)


@given(body=payloads(datausa_document))
@example(body=to_bytes({"data": [], "columns": []}))
def test_a_datausa_answer_is_recognised_or_landed_with_a_warning_or_refused(body):
    try:
        shape = datausa_shape(body)
    except BadPayload as exc:
        assert "not JSON" in str(exc)
        return
    if shape.shape == "unknown":
        assert shape.warnings and shape.records is None  # landed anyway, for the transformer to quarantine
    else:
        assert shape.records == len(json.loads(body)["data"])


def scan_count(text: str) -> int:
    return scan_rows(text).rows
