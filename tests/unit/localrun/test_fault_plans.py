"""The fault plans a user can pass to `make run ARGS='--faults PLAN.json'`: the bundled ones load, wrong ones are
refused with the reason, and each snapshot-integrity kind changes the answer as documented."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from localrun.faults.source import _REWRITES, drifted, page_of
from localrun.faults.spec import PlanDocument, SourceFault
from localrun.replay import ReplayRequest
from tests.conftest import FIXTURES

PLANS = sorted((FIXTURES / "faults").glob("*.json"))


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_every_bundled_plan_loads(path):
    assert PlanDocument.model_validate_json(path.read_text())


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ({"kind": "page_repeated", "endpoint": "socrata_rows"}, "needs page"),
        ({"kind": "page_repeated", "endpoint": "socrata_rows", "page": 0}, "page must be 1 or more"),
        ({"kind": "page_empty", "endpoint": "datausa", "page": 1}, "set endpoint to socrata_rows"),
        ({"kind": "listing_omits", "endpoint": "bls_bulk_listing"}, "needs files"),
        ({"kind": "series_missing", "endpoint": "datausa"}, "set endpoint to bls_api"),
        ({"kind": "year_missing", "endpoint": "datausa"}, "needs year"),
    ],
)
def test_a_wrong_fault_is_refused_with_its_reason(fault, problem):
    with pytest.raises(ValidationError, match=problem):
        SourceFault.model_validate(fault)


def request(endpoint: str, **query: str) -> ReplayRequest:
    return ReplayRequest(endpoint, "GET", "/resource/utrz-jf79.json", query, {}, b"", 1)


def test_the_page_of_a_request_is_its_offset_over_its_limit():
    assert page_of(request("socrata_rows", **{"$offset": "40", "$limit": "20"})) == 2
    assert page_of(request("socrata_count", **{"$select": "count(*)"})) is None


def test_a_body_cut_at_a_line_boundary_ends_with_a_whole_line():
    body = b"header\n" + b"".join(f"line {i}\n".encode() for i in range(100))
    cut = _REWRITES["cut_body"](SourceFault(kind="cut_body", keep_fraction=0.5, at_line_boundary=True), body)
    assert cut.endswith(b"\n") and body.startswith(cut) and len(body) // 3 < len(cut) <= len(body) // 2
    mid = _REWRITES["cut_body"](SourceFault(kind="cut_body", keep_fraction=0.5), body)
    assert len(mid) == len(body) // 2


def test_a_listing_loses_the_named_files_only():
    listing = (
        b'<pre><A HREF="/pub/">[To Parent Directory]</A><br><br> 8/6/2026 8:30 AM 102 '
        b'<A HREF="/pub/time.series/pr/pr.class">pr.class</A><br> 8/6/2026 8:30 AM 263 '
        b'<A HREF="/pub/time.series/pr/pr.sector">pr.sector</A><br></pre>'
    )
    fault = SourceFault(kind="listing_omits", endpoint="bls_bulk_listing", files=["pr.sector"])
    answer = _REWRITES["listing_omits"](fault, listing)
    assert b"pr.class" in answer and b"pr.sector" not in answer


def test_an_answer_loses_the_named_series_or_year():
    bls = {"status": "REQUEST_SUCCEEDED", "Results": {"series": [{"seriesID": "A1", "data": []}, {"seriesID": "B2"}]}}
    fault = SourceFault(kind="series_missing", endpoint="bls_api", dataset="A1")
    assert [
        s["seriesID"]
        for s in json.loads(_REWRITES["series_missing"](fault, json.dumps(bls).encode()))["Results"]["series"]
    ] == ["B2"]
    population = {"data": [{"Year": 2014}, {"Year": 2015}], "columns": ["Year"]}
    fault = SourceFault(kind="year_missing", endpoint="datausa", year=2015)
    assert json.loads(_REWRITES["year_missing"](fault, json.dumps(population).encode()))["data"] == [{"Year": 2014}]


def test_a_socrata_schema_drift_renames_a_data_field_not_sodas_id():
    rows = [{":id": "row-1", "adre_a": "C. Major 1", "comarca": "Garraf"}, {":id": "row-2", "adre_a": "Pl. 2"}]

    drifted_rows = json.loads(drifted("socrata_rows", json.dumps(rows).encode()))

    assert drifted_rows == [
        {":id": "row-1", "adre_a_v2": "C. Major 1", "comarca": "Garraf"},
        {":id": "row-2", "adre_a_v2": "Pl. 2"},
    ]
