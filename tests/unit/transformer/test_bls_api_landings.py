"""BLS API landings that point at stored responses: each manifest stages its own series, windows merge, lineage
names the response object, and a part without the series (or without JSON) is quarantined with the reason."""

from __future__ import annotations

import json

import pytest

from datalake.contracts import Source
from tests.unit.transformer.support import (
    FIXTURES,
    api_response,
    bls_series_document,
    new_service,
    observation,
    stage,
)
from transformer.landing import LandingRef
from transformer.service import InvalidManifest

RESPONSE = FIXTURES / "ryansuhr_bls_api_v2_response_2024-12-13.json"  # LNS1x000000 and CES0000000001, as received


def rows_of(aws, series_id: str) -> list[dict]:
    return [r for r in aws.staging("bls_observation").to_pylist() if r["series_id"] == series_id]


def test_two_series_of_one_stored_response_each_stage_their_own_rows(aws):
    # GIVEN one response body holding five series, stored once, and the landings of two of them pointing at it
    body = RESPONSE.read_bytes()
    unemployment = aws.landings.bls_api("LNS14000000", [body])
    employment = aws.landings.bls_api("CES0000000001", [body])
    [stored] = aws.keys("landing/bls_api/_responses/")
    assert aws.get(stored) == body

    # WHEN each landing is staged
    first, second = stage(aws, unemployment), stage(aws, employment)

    # THEN each stages its own series only, and every row's lineage is the stored response
    assert first["status"] == second["status"] == "staged"
    assert first["counts"]["rows_written"] == second["counts"]["rows_written"] == 59
    staged = aws.staging("bls_observation")
    assert sorted(set(staged["series_id"].to_pylist())) == ["CES0000000001", "LNS14000000"]
    assert set(staged["_source"].to_pylist()) == {stored}
    assert {r["survey"] for r in rows_of(aws, "CES0000000001")} == {"ce"}
    assert {r["survey"] for r in rows_of(aws, "LNS14000000")} == {"ln"}


def test_the_year_windows_of_a_backfill_merge_into_one_group_with_each_rows_source(aws):
    # GIVEN a 1987-2026 backfill answered in two windows (two POSTs, two stored responses)
    def months(first: int, last: int) -> list[dict]:
        return [observation(y, f"M{m:02d}", f"{y % 100}.{m}") for y in range(last, first - 1, -1) for m in (12, 6)]

    older = api_response("PRS30006032", months(1987, 2006))
    recent = api_response("PRS30006032", months(2007, 2026))
    key = aws.landings.bls_api("PRS30006032", [recent, older])
    recent_key, older_key = (p["key"] for p in aws.json(key)["parts"])

    # WHEN it is staged
    outcome = stage(aws, key)

    # THEN every year of both windows is staged, in one file of the series' group
    assert outcome["status"] == "staged" and outcome["counts"]["rows_written"] == 2 * 40
    rows = rows_of(aws, "PRS30006032")
    assert sorted({r["year"] for r in rows}) == list(range(1987, 2027))
    assert len(aws.keys("staging/bls_observation/source_kind=api/survey=pr/")) == 1
    # AND each row's _source is the response object it came from
    assert {r["_source"] for r in rows if r["year"] >= 2007} == {recent_key}
    assert {r["_source"] for r in rows if r["year"] < 2007} == {older_key}


def test_a_part_that_lacks_the_series_is_quarantined_with_the_reason(aws):
    # GIVEN a stored response answering other series only (BLS said "No data" or the landing is wrong)
    body = api_response("LNS13000000", [observation(2024, "M10", "7000")])
    key = aws.landings.bls_api("LNS14000000", [body])
    before = aws.versions("landing/")

    outcome = stage(aws, key)

    assert outcome["status"] == "quarantined" and aws.keys("staging/") == []
    reason = aws.json(outcome["quarantine_keys"][0])
    assert reason["check"] == "api.series"
    assert reason["reason"].startswith("series LNS14000000 is not in ")
    assert reason["part_key"].startswith("landing/bls_api/_responses/")
    assert aws.versions("landing/") == before  # the stored response is untouched


def test_a_part_that_is_not_json_quarantines_the_landing_and_holds_back_its_other_window(aws):
    good = api_response("LNS14000000", [observation(2024, "M10", "4.1")])
    bad = api_response("LNS14000000", [observation(2003, "M10", "6.0")])[:-9]
    key = aws.landings.bls_api("LNS14000000", [good, bad])

    outcome = stage(aws, key)

    assert outcome["status"] == "quarantined" and aws.keys("staging/") == []
    reason = aws.json(outcome["quarantine_keys"][0])
    assert reason["check"] == "payload.json" and "truncated" in reason["reason"]


def test_a_landing_narrowed_to_its_series_at_its_own_prefix_still_stages(aws):
    # GIVEN a landing as the extractor wrote them before responses were stored as received
    response = json.loads(RESPONSE.read_bytes())
    key = aws.landings.single(Source.BLS_API, "LNS14000000", bls_series_document(response, "LNS14000000"))

    outcome = stage(aws, key)

    assert outcome["status"] == "staged" and outcome["counts"]["rows_written"] == 59
    [part] = aws.json(key)["parts"]
    assert part["select_series"] is None
    assert {r["_source"] for r in rows_of(aws, "LNS14000000")} == {part["key"]}


def _rewritten(aws, key: str, changes: dict[str, str]) -> LandingRef:
    """The landing's manifest with its first part changed: what a producer bug would commit."""
    manifest = aws.json(key)
    manifest["parts"][0].update(changes)
    written = aws.put(key, json.dumps(manifest).encode())
    return LandingRef(bucket=aws.bucket, key=key, etag=written["ETag"].strip('"'))


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"select_series": "CES0000000001"}, "is the landing of LNS14000000 but selects"),
        ({"key": "landing/bls_api/CES0000000001/ingest_date=2026-11-21/x.json"}, "lists parts outside"),
    ],
    ids=["another-series", "another-series-prefix"],
)
def test_a_manifest_that_selects_or_points_at_another_series_is_refused(aws, changes, says):
    key = aws.landings.bls_api("LNS14000000", [RESPONSE.read_bytes()])
    with pytest.raises(InvalidManifest, match=says):
        new_service().read_manifest(_rewritten(aws, key, changes))


def test_only_a_bls_api_landing_may_point_at_stored_responses(aws):
    [response_part] = aws.json(aws.landings.bls_api("LNS14000000", [RESPONSE.read_bytes()]))["parts"]
    body = (FIXTURES / "tesseract_jsonrecords_acs_yg_total_population_1_Nation_Year.json").read_bytes()
    key = aws.landings.single(Source.DATAUSA, "population", body)
    service = new_service()
    with pytest.raises(InvalidManifest, match="lists parts outside"):
        service.read_manifest(_rewritten(aws, key, {"key": response_part["key"]}))
    key = aws.landings.single(Source.DATAUSA, "population", body)  # committed again, as it was
    with pytest.raises(InvalidManifest, match="only BLS API parts do"):
        service.read_manifest(_rewritten(aws, key, {"select_series": "LNS14000000"}))
