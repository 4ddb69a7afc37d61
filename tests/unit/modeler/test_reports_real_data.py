"""The reports on real data: the 2026-08 BLS pr release and the recorded DataUSA (tesseract) population.

The handler is invoked with exactly ``events/modeler_staged_batch.json``. Every expected answer is computed by the
tests (``raw_answers``) from the raw files, with csv/json and Decimal/Fraction arithmetic: no staging helper, no
modeler function.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from modeler.registry import MARTS
from tests.conftest import FakeLambdaContext, load_event
from tests.unit.modeler.conftest import modeler_moto
from tests.unit.modeler.raw_answers import (
    expected_best_years,
    expected_correlations,
    expected_population_stats,
    expected_series_population,
    raw_population,
    raw_pr_rows,
)
from tests.unit.modeler.staging_builder import POPULATION_JSON, PR_CURRENT, PR_DIR, RUN_ID, bulk_observations

BEST_YEAR_KEY = "marts/reports/bls_best_year/bls_best_year.parquet"
POPULATION_STATS_KEY = "marts/reports/population_stats/population_stats.parquet"
SERIES_POPULATION_KEY = "marts/reports/series_population/series_population.parquet"
CORRELATION_KEY = "marts/reports/bls_population_correlation/bls_population_correlation.parquet"


@pytest.fixture(scope="module")
def built():
    """Staging of the 2026-08 release (Current and AllData files, series), population, SIAD and the Catalunya
    sources, then one build; made once for the module (the tests only read it)."""
    from datalake.aws import reset_clients
    from modeler import handler

    reset_clients()
    with modeler_moto() as modeler_aws:
        modeler_aws.staging.stage_all()
        all_data = bulk_observations(PR_DIR / "pr.data.1.AllData", RUN_ID, version_id="v-alldata-1")
        modeler_aws.staging.write("bls_observation", all_data, {"source_kind": "bulk", "survey": "pr"})
        response = handler.lambda_handler(load_event("modeler_staged_batch.json"), FakeLambdaContext())
        assert response == {"batchItemFailures": []}
        yield modeler_aws


# ----------------------------------------------------------------------------------------------------------------
# The reports
# ----------------------------------------------------------------------------------------------------------------


def test_population_stats_match_the_raw_datausa_file(built):
    # GIVEN the recorded population, parsed independently: 2013-2018 are all present
    expected = expected_population_stats(raw_population(POPULATION_JSON))
    assert expected.years == [2013, 2014, 2015, 2016, 2017, 2018]

    # THEN the report holds the same mean and both standard deviations, named so, and the years present
    (row,) = built.mart(POPULATION_STATS_KEY).to_pylist()
    assert row["mean_population"] == float(expected.mean) == 322_069_808.0
    assert row["std_population_ddof0"] == pytest.approx(float(expected.std_population), rel=1e-14)
    assert row["std_sample_ddof1"] == pytest.approx(float(expected.std_sample), rel=1e-14)
    assert row["std_sample_ddof1"] > row["std_population_ddof0"]
    assert (row["years_present"], row["years_expected"]) == (6, 6)
    assert row["years"] == "2013,2014,2015,2016,2017,2018"
    assert (row["year_from"], row["year_to"]) == (2013, 2018)
    assert row["vintage"] == "ACS 1-year Estimate"
    assert row["geography_id"] == "01000US"


def test_best_year_per_series_matches_the_raw_current_file(built):
    # GIVEN the answers computed from the raw pr.data.0.Current with Decimal sums
    raw = raw_pr_rows(PR_CURRENT)
    answers = expected_best_years(raw)
    expected, tied, annual_only = answers.best, answers.tied, answers.annual_only
    # the real file exercises every rule: 282 series, 45 annual-only, and genuine ties
    assert len(expected) == 282
    assert len(annual_only) == 45
    assert tied, "the 2026-08 release has series whose best year is a tie"

    # THEN exactly one row per series, each with the expected year and exact sum
    rows = built.mart(BEST_YEAR_KEY).to_pylist()
    assert len(rows) == len({r["series_id"] for r in rows}) == 282
    got = {r["series_id"]: (r["year"], r["value"]) for r in rows}
    assert got == {s: (year, float(total)) for s, (year, total) in expected.items()}
    # ties went to the earliest year; annual-only series took their Q05 value
    for series in tied:
        assert got[series][0] == expected[series][0]
    q05 = {(r["series_id"], int(r["year"])): float(Decimal(r["value"])) for r in raw if r["period"] == "Q05"}
    for series in annual_only:
        assert got[series][1] == q05[(series, got[series][0])]
    assert got["PRS30006032"] == (2021, 13.8)


def test_series_population_keeps_every_year_and_null_populations(built):
    # GIVEN PRS30006032 Q01 from the raw Current file and the population by year from the raw JSON
    expected = expected_series_population(raw_pr_rows(PR_CURRENT), raw_population(POPULATION_JSON))

    # THEN every year is there, with its population or null (never dropped)
    rows = built.mart(SERIES_POPULATION_KEY).to_pylist()
    assert [(r["year"], r["value"], r["population"]) for r in rows] == expected
    assert {r["series_id"] for r in rows} == {"PRS30006032"}
    assert {r["period"] for r in rows} == {"Q01"}
    assert rows[0]["year"] == 1995 and rows[-1]["year"] == 2026
    by_year = {r["year"]: r for r in rows}
    assert by_year[2020]["population"] is None  # no ACS 1-year release for 2020: kept, null
    assert by_year[2013]["population"] == 316_128_839
    assert sum(r["population"] is None for r in rows) == len(rows) - 10


def test_correlation_with_population_matches_an_independent_pearson(built):
    # GIVEN each series' Q05 (annual) value from the raw Current file, paired with the population of its year
    expected = expected_correlations(raw_pr_rows(PR_CURRENT), raw_population(POPULATION_JSON))

    # THEN the report has the same number of years and the same r for every series
    rows = {r["series_id"]: r for r in built.mart(CORRELATION_KEY).to_pylist()}
    assert set(rows) == set(expected)
    for series, (n, r) in expected.items():
        assert rows[series]["n_years"] == n
        assert rows[series]["pearson_r"] == pytest.approx(r, rel=1e-9, abs=1e-12), series
    assert {r["population_vintage"] for r in rows.values()} == {"ACS 1-year Estimate"}


# ----------------------------------------------------------------------------------------------------------------
# Lineage and events
# ----------------------------------------------------------------------------------------------------------------


def test_best_year_lineage_names_the_landing_objects_it_came_from(built):
    document = built.json("marts/_lineage/marts/bls_best_year.json")
    (source,) = document["inputs"]
    assert source["table"] == "bls_observation"
    assert source["selection"] == "source_kind=bulk, source_file=pr.data.0.Current"
    # only the Current file's landing object, with the run that landed it; not AllData, also staged
    assert source["landing"] == [
        {"object": "landing/bls_bulk/pr/pr.data.0.Current?versionId=v-current-1", "run_ids": [RUN_ID], "rows": 38412}
    ]
    assert len(source["files"]) == 1 and source["files"][0]["key"].startswith(
        "staging/bls_observation/source_kind=bulk/survey=pr/part-"
    )
    assert document["triggered_by_runs"] == [RUN_ID]
    assert document["rows"] == 282
    assert all(c["passed"] for c in document["checks"])
    # the object's S3 metadata carries the run, and the document names the exact version published
    head = built.head("marts/reports/bls_best_year/bls_best_year.parquet")
    assert head["VersionId"] == document["version_id"]
    assert head["Metadata"]["run-id"] == RUN_ID

    # the fact reads both files: its lineage names both landing objects
    fact = built.json("marts/_lineage/marts/fact_bls_observation.json")
    objects = {src["object"] for i in fact["inputs"] for src in i["landing"]}
    assert objects == {
        "landing/bls_bulk/pr/pr.data.0.Current?versionId=v-current-1",
        "landing/bls_bulk/pr/pr.data.1.AllData?versionId=v-alldata-1",
    }

    # the whole graph is drawable: landing object -> staging table -> report, as Mermaid and DOT
    graph = built.json("marts/_lineage/graph.json")
    edges = {(e["from"], e["to"]) for e in graph["edges"]}
    assert ("landing:landing/bls_bulk/pr/pr.data.0.Current?versionId=v-current-1", "staging:bls_observation") in edges
    assert ("staging:bls_observation", "mart:bls_best_year") in edges
    assert ("mart:agg_bls_series_yearly", "mart:bls_population_correlation") in edges
    mermaid = built.text("marts/_lineage/graph.mmd")
    assert mermaid.startswith("flowchart LR")
    assert "pr.data.0.Current?versionId=v-current-1" in mermaid and '[["bls_best_year"]]' in mermaid
    dot = built.text("marts/_lineage/graph.dot")
    assert '"staging:bls_observation" -> "mart:bls_best_year"' in dot


def test_one_rebuild_serves_the_batch_and_announces_it(built):
    events = built.events()
    assert [e["event_type"] for e in events] == ["marts.built"]
    (event,) = events
    assert event["run_id"] == RUN_ID
    names = {m["name"] for m in event["marts"]}
    assert {"population_stats", "bls_best_year", "series_population", "bls_population_correlation"} <= names
    assert event["counts"]["published"] == len(event["marts"]) == len(MARTS)
    assert event["counts"]["failed"] == 0
    best = next(m for m in event["marts"] if m["name"] == "bls_best_year")
    assert best == {"name": "bls_best_year", "rows": 282, "key": BEST_YEAR_KEY}


def test_each_mart_folder_holds_exactly_its_one_parquet_object(built):
    # Athena reads every object under a table's location: a mart's folder must hold nothing else (a partitioned
    # mart's: one object per partition folder, survey=.../year=.../)
    import re

    from modeler.registry import MARTS

    for spec in MARTS:
        listed = [
            o["Key"] for o in built.s3.list_objects_v2(Bucket=built.bucket, Prefix=spec.prefix).get("Contents", [])
        ]
        if spec.partitioned:
            pattern = re.compile(rf"^{re.escape(spec.prefix)}survey=[a-z]{{2}}/year=[0-9]{{4}}/{spec.name}\.parquet$")
            assert listed and all(pattern.match(key) for key in listed), spec.name
            assert built.json(spec.lineage_key)["key"] == spec.prefix
            continue
        assert listed == [spec.data_key], spec.name
        assert built.json(spec.lineage_key)["key"] == spec.data_key
