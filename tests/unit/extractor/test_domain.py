"""The extractor's pure logic: BLS windows and coalescing, response splitting, the bulk listing and sync plan."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime

import pytest

from datalake.contracts import ExtractParams
from extractor.domain import (
    WITH_KEY,
    WITHOUT_KEY,
    SeriesWant,
    bulk_file_role,
    datausa_params,
    datausa_shape,
    deferral_seconds,
    echoes_secret,
    merge_series,
    messages_about,
    mirror_digest,
    parse_bls_listing,
    parse_bls_response,
    plan_bls_queries,
    plan_sync,
    requested_years,
    series_content_sha256,
    series_does_not_exist,
    series_observations,
    socrata_columns,
    year_windows,
)
from extractor.errors import BadPayload, InvalidRequest
from extractor.proof import scan_rows
from localrun.replay import bls_listing_html
from tests.unit.extractor.support import REPLAY

# -- BLS API: windows and coalescing ---------------------------------------------------------------------------


def test_year_windows_split_a_backfill_newest_first():
    assert year_windows(1990, 2024, 20) == [(2005, 2024), (1990, 2004)]
    assert year_windows(2005, 2024, 10) == [(2015, 2024), (2005, 2014)]
    assert year_windows(2024, 2026, 20) == [(2024, 2026)]


def test_requested_years_default_to_the_recent_window():
    today = date(2026, 11, 21)
    assert requested_years(ExtractParams(), today, 3) == (2024, 2026)
    assert requested_years(ExtractParams(start_year=2005, end_year=2024), today, 3) == (2005, 2024)
    assert requested_years(ExtractParams(start_year=2020, end_year=2030), today, 3) == (2020, 2026)
    with pytest.raises(InvalidRequest):
        requested_years(ExtractParams(start_year=2030), today, 3)


@pytest.mark.parametrize(("n", "limits", "calls"), [(68, WITH_KEY, 2), (68, WITHOUT_KEY, 3), (50, WITH_KEY, 1)])
def test_series_are_coalesced_into_as_few_queries_as_the_limits_allow(n, limits, calls):
    wants = [SeriesWant(f"LNS{i:08d}", 2024, 2026) for i in range(n)]
    queries = plan_bls_queries(wants, limits)
    assert len(queries) == calls == math.ceil(n / limits.series_per_query)
    assert all(len(q.series_ids) <= limits.series_per_query for q in queries)
    assert sorted(s for q in queries for s in q.series_ids) == sorted(w.series_id for w in wants)


def test_a_backfill_costs_one_query_per_window_and_chunk():
    wants = [SeriesWant(f"CES{i:010d}", 1990, 2024) for i in range(30)]
    with_key = plan_bls_queries(wants, WITH_KEY)
    without_key = plan_bls_queries(wants, WITHOUT_KEY)
    assert len(with_key) == 1 * 2  # 30 series fit one chunk; 35 years are two 20-year windows
    assert len(without_key) == 2 * 4  # two chunks of at most 25, four 10-year windows
    for query in without_key:
        assert query.end_year - query.start_year + 1 <= 10
        assert "registrationkey" not in query.payload()


def test_different_windows_never_share_a_query():
    wants = [SeriesWant("A01", 2024, 2026), SeriesWant("B02", 2005, 2024), SeriesWant("C03", 2024, 2026)]
    queries = plan_bls_queries(wants, WITH_KEY)
    assert {(q.series_ids, q.start_year, q.end_year) for q in queries} == {
        (("B02",), 2005, 2024),
        (("A01", "C03"), 2024, 2026),
    }


# -- BLS API: reading answers -----------------------------------------------------------------------------------


def test_a_real_recorded_response_splits_into_its_series():
    body = (REPLAY / "bls_api" / "ryansuhr_bls_api_v2_response_2024-12-13.json").read_bytes()
    response = parse_bls_response(body)
    assert response.status == "REQUEST_SUCCEEDED"
    assert sorted(response.series) == ["CES0000000001", "LNS11000000", "LNS12000000", "LNS13000000", "LNS14000000"]
    unemployment = response.series["LNS14000000"]["data"]
    assert len(unemployment) == 59 and unemployment[0]["value"] == "4.2"


def test_messages_are_attributed_to_their_series():
    messages = [
        "No Data Available for Series CUUR0000SA0 Year: 2026",
        "Series does not exist for Series CES9999999999",
        "Year range has been reduced to the system-allowed limit of 20 years.",
    ]
    assert messages_about("CUUR0000SA0", messages) == [messages[0], messages[2]]
    assert series_does_not_exist("CES9999999999", messages) == messages[1]
    assert series_does_not_exist("CUUR0000SA0", messages) is None


@pytest.mark.parametrize("body", [b"<html><body>Service Unavailable</body></html>", b'{"status": "REQUEST_SUCC', b"[]"])
def test_a_body_that_is_not_a_v2_response_is_a_bad_payload(body):
    with pytest.raises(BadPayload):
        parse_bls_response(body)


def test_windows_merge_newest_first_and_the_hash_ignores_timing():
    recent = {"seriesID": "X01", "data": [{"year": "2024", "period": "M01", "value": "1"}]}
    older = {"seriesID": "X01", "data": [{"year": "2010", "period": "M12", "value": "-"}]}
    merged = merge_series([recent, older])
    assert [(o["year"], o["period"]) for o in merged["data"]] == [("2024", "M01"), ("2010", "M12")]
    assert merged["data"][1]["value"] == "-"  # values untouched
    assert series_observations(merged) == 2 and series_observations({"seriesID": "X01"}) == 0
    # two responses carrying the same series, with different timing, messages and neighbours, hash alike
    first = {"status": "REQUEST_SUCCEEDED", "responseTime": 120, "message": [], "Results": {"series": [recent]}}
    second = {
        "status": "REQUEST_SUCCEEDED",
        "responseTime": 87,
        "message": ["No Data Available for Series X02 Year: 2024"],
        "Results": {"series": [{"seriesID": "X02", "data": []}, json.loads(json.dumps(recent))]},
    }
    one = parse_bls_response(json.dumps(first).encode()).series["X01"]
    other = parse_bls_response(json.dumps(second).encode()).series["X01"]
    assert series_content_sha256(one) == series_content_sha256(other) == series_content_sha256(recent)
    assert series_content_sha256(merged) != series_content_sha256(recent)


def test_a_body_echoing_the_key_is_recognised_in_any_case():
    key = "0123456789abcdef" * 2
    assert echoes_secret(f'{{"message": ["The key:{key.upper()} provided by the User is invalid."]}}'.encode(), key)
    assert echoes_secret(f"...{key}...".encode(), key)
    assert not echoes_secret(b'{"status": "REQUEST_SUCCEEDED"}', key)
    assert not echoes_secret(b"anything", None)


# -- BLS bulk: the listing and the sync plan --------------------------------------------------------------------

REAL_FORMAT = (
    "<html><head><title>download.bls.gov - /pub/time.series/pr/</title></head><body><H1>download.bls.gov - "
    '/pub/time.series/pr/</H1><hr>\r\n\r\n<pre><A HREF="/pub/time.series/">[To Parent Directory]</A><br><br>'
    '  8/6/2026  8:30 AM          102 <A HREF="/pub/time.series/pr/pr.class">pr.class</A><br>'
    '  8/6/2026  8:30 AM      1613575 <A HREF="/pub/time.series/pr/pr.data.0.Current">pr.data.0.Current</A><br>'
    ' 9/13/2022  4:52 PM          562 <A HREF="/pub/time.series/pr/pr.contacts">pr.contacts</A><br>'
    ' 1/2/2024 10:01 AM        &lt;dir&gt; <A HREF="/pub/time.series/pr/old/">old</A><br>'
    '  8/6/2026  8:30 AM           10 <A HREF="/pub/time.series/ap/ap.series">ap.series</A><br>'
    "</pre><hr></body></html>\r\n"
)


def test_the_bls_listing_format_is_parsed():
    files = parse_bls_listing(REAL_FORMAT, "https://download.bls.gov/pub/time.series/pr/", "pr")
    assert [(f.name, f.size, f.last_modified) for f in files] == [
        ("pr.class", 102, "8/6/2026 8:30 AM"),
        ("pr.contacts", 562, "9/13/2022 4:52 PM"),
        ("pr.data.0.Current", 1613575, "8/6/2026 8:30 AM"),
    ]
    assert files[2].url == "https://download.bls.gov/pub/time.series/pr/pr.data.0.Current"


def test_the_replay_listing_is_the_same_format():
    moment = datetime(2026, 8, 6, 8, 30, tzinfo=UTC)
    page = bls_listing_html("pr", [("pr.class", 102, moment), ("pr.series", 15657, moment)])
    assert '  8/6/2026  8:30 AM          102 <A HREF="/pub/time.series/pr/pr.class">pr.class</A><br>' in page
    files = parse_bls_listing(page, "http://127.0.0.1:9/pub/time.series/pr/", "pr")
    assert [(f.name, f.size) for f in files] == [("pr.class", 102), ("pr.series", 15657)]


@pytest.mark.parametrize(
    "page",
    [
        "<html><body><h1>Access Denied</h1></body></html>",
        '<pre><A HREF="/pub/time.series/">[To Parent Directory]</A><br><br></pre>',
        '<a href="https://evil.example/pub/time.series/pr/pr.series">pr.series</a>',
        '<a href="/pub/time.series/pr/../../etc/passwd">../../etc/passwd</a>',
    ],
)
def test_a_listing_without_files_of_the_survey_is_refused_not_read_as_empty(page):
    with pytest.raises(BadPayload):
        parse_bls_listing(page, "https://download.bls.gov/pub/time.series/pr/", "pr")


def test_sync_plan_writes_new_and_changed_deletes_removed_keeps_unchanged():
    plan = plan_sync(
        upstream={"pr.class": "a", "pr.series": "b2", "pr.data.0.Current": "c"},
        mirrored={"pr.class": "a", "pr.series": "b1", "pr.txt": "d", "pr.contacts": None},
    )
    assert plan.added == ["pr.data.0.Current"]
    assert plan.changed == ["pr.series"]
    assert plan.deleted == ["pr.contacts", "pr.txt"]
    assert plan.unchanged == ["pr.class"]
    assert plan.to_write == ["pr.data.0.Current", "pr.series"]
    assert plan_sync({"pr.class": "a"}, {"pr.class": "a"}).is_empty


def test_mirror_digest_depends_on_names_and_contents_only():
    assert mirror_digest({"b": "2", "a": "1"}) == mirror_digest({"a": "1", "b": "2"})
    assert mirror_digest({"a": "1"}) != mirror_digest({"a": "2"})


def test_bulk_file_roles():
    assert bulk_file_role("pr", "pr.data.1.AllData") == "data"
    assert bulk_file_role("pr", "pr.series") == "mapping"
    assert bulk_file_role("pr", "pr.txt") == "metadata"


# -- Socrata, DataUSA, deferral ---------------------------------------------------------------------------------


def test_rows_are_counted_without_a_list_and_broken_pages_refused():
    rows = (REPLAY / "socrata" / "utrz-jf79.json").read_text()
    assert scan_count(rows) == 62
    assert scan_count(" [ ] ") == 0
    assert scan_count('[{"a": {"b": [1, {"c": "]"}]}}, {"d": "x,y"}]') == 2
    for broken in (rows[: len(rows) // 2], "<html>Rate limited</html>", '{"error": true}', "[1,2] [3]"):
        with pytest.raises(BadPayload):
            scan_count(broken)


def test_socrata_columns_come_from_the_metadata():
    columns = socrata_columns((REPLAY / "socrata" / "9uvn-hv6j.views.json").read_bytes())
    assert ("geocoded_column", "point") in columns and ("codi_postal", "text") in columns
    with pytest.raises(BadPayload):
        socrata_columns(b'{"id": "9uvn-hv6j"}')


def test_datausa_current_and_legacy_shapes():
    current = datausa_params("population", "https://honolulu-api.datausa.io/tesseract/data.jsonrecords")
    assert current == {
        "cube": "acs_yg_total_population_1",
        "drilldowns": "Year,Nation",
        "locale": "en",
        "measures": "Population",
    }
    assert datausa_params("population", "https://datausa.io/api/data") == {
        "drilldowns": "Nation",
        "measures": "Population",
    }
    with pytest.raises(InvalidRequest):
        datausa_params("income", "https://datausa.io/api/data")
    tesseract = datausa_shape((REPLAY / "datausa" / "population.json").read_bytes())
    assert (tesseract.shape, tesseract.records) == ("tesseract", 10)
    legacy = {"data": [{"ID Nation": "01000US", "Year": "2023", "Population": 332387540}], "source": []}
    assert (datausa_shape(json.dumps(legacy).encode()).shape, datausa_shape(json.dumps(legacy).encode()).records) == (
        "legacy",
        1,
    )
    assert datausa_shape(b'{"rows": []}').shape == "unknown"


def test_deferral_grows_and_is_capped_at_twelve_hours():
    assert [deferral_seconds(n) for n in range(1, 9)] == [900, 1800, 3600, 7200, 14400, 28800, 42300, 42300]


def scan_count(text: str) -> int:
    return scan_rows(text).rows
