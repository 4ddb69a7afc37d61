"""The whole local pipeline (`python -m localrun`, the default scheduled run of `make run`) over the bundled replay:
scheduler -> extractor -> transformer -> modeler -> notifier on moto's server, sources served on 127.0.0.1. The
reports it prints and the marts it leaves in the lake folder are compared with answers computed from the raw files
(the replay's, and the Catalunya CSV exports of tests/fixtures/catalunya); a second run changes nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from datalake.catalog import load_catalog
from datalake.contracts import Source
from localrun.template import ROOT
from tests.support.audit import dead_letters
from tests.support.local_run import full_run, run_local
from tests.unit.modeler.catalunya_answers import (
    MUNICIPALITIES_CSV,
    POPULATION_CSV,
    REGISTER_CSV,
    energy_by_comarca_sector,
    ranked_comarques,
    rows,
)
from tests.unit.modeler.catalunya_answers import coverage as expected_coverage
from tests.unit.modeler.raw_answers import (
    expected_best_years,
    expected_population_stats,
    expected_series_population,
    raw_population,
    raw_pr_rows,
)

pytestmark = pytest.mark.e2e

REPLAY = ROOT / "data" / "replay"
PR_CURRENT = REPLAY / "bls_bulk" / "pr" / "pr.data.0.Current"
POPULATION = REPLAY / "datausa" / "population.json"


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, str]:
    """The session's full default run (shared with the IAM evaluation, which only reads its recorded calls)."""
    run = full_run(tmp_path_factory)
    return run.lake_dir, run.output


def test_the_run_prints_the_report_answers_computed_from_the_raw_files(first_run):
    _, output = first_run
    stats = expected_population_stats(raw_population(POPULATION))
    for label, value in (
        ("mean", stats.mean),
        ("std, population (ddof=0)", stats.std_population),
        ("std, sample (ddof=1)", stats.std_sample),
    ):
        shown = f"{float(value):,.2f}"
        assert re.search(rf"^\s+{re.escape(label)}\s+{re.escape(shown)}$", output, re.MULTILINE), (label, shown)
    assert f"({len(stats.years)} of 6 years present: 2013,2014,2015,2016,2017,2018)" in output
    best = expected_best_years(raw_pr_rows(PR_CURRENT))
    assert f"bls_best_year: {len(best.best)} series, one row each" in output
    rows = expected_series_population(raw_pr_rows(PR_CURRENT), raw_population(POPULATION))
    with_population = sum(p is not None for _, _, p in rows)
    assert (
        f"series_population: PRS30006032 Q01, {len(rows)} years, {with_population} with a population, "
        f"{len(rows) - with_population} without" in output
    )
    for year, value, population in rows:
        shown = "-" if population is None else f"{population:,}"
        assert re.search(rf"^\s+{year}\s+{value:.1f}\s+{re.escape(shown)}$", output, re.MULTILINE), year


def test_the_lake_holds_the_reports_by_the_rules(first_run):
    lake_dir, _ = first_run
    reports = lake_dir / "marts" / "reports"
    best = pq.read_table(reports / "bls_best_year" / "bls_best_year.parquet").to_pylist()
    expected = expected_best_years(raw_pr_rows(PR_CURRENT)).best
    assert {r["series_id"]: (r["year"], r["value"]) for r in best} == {
        s: (y, float(v)) for s, (y, v) in expected.items()
    }
    series = pq.read_table(reports / "series_population" / "series_population.parquet").to_pylist()
    assert [(r["year"], r["value"], r["population"]) for r in series] == expected_series_population(
        raw_pr_rows(PR_CURRENT), raw_population(POPULATION)
    )
    (stats,) = pq.read_table(reports / "population_stats" / "population_stats.parquet").to_pylist()
    answer = expected_population_stats(raw_population(POPULATION))
    assert stats["mean_population"] == float(answer.mean)
    assert stats["std_population_ddof0"] == pytest.approx(float(answer.std_population), rel=1e-14)
    assert stats["std_sample_ddof1"] == pytest.approx(float(answer.std_sample), rel=1e-14)


def test_best_year_lineage_names_the_mirrored_current_file_and_the_run(first_run):
    lake_dir, output = first_run
    run_id = re.search(r"^run (\S+) finished", output, re.MULTILINE).group(1)
    document = json.loads((lake_dir / "marts" / "_lineage" / "marts" / "bls_best_year.json").read_text())
    (source,) = document["inputs"]
    (landing,) = source["landing"]
    assert landing["object"].startswith("landing/bls_bulk/pr/pr.data.0.Current?versionId=")
    assert landing["run_ids"] == [run_id]
    assert landing["rows"] == len(raw_pr_rows(PR_CURRENT))
    assert document["triggered_by_runs"] == [run_id]


def test_a_second_run_over_the_same_data_changes_nothing(first_run):
    lake_dir, _ = first_run
    before = {p: p.read_bytes() for p in (lake_dir / "marts").rglob("*") if p.is_file()}
    output = run_local(lake_dir).output
    assert re.search(r"== lake .*: 0 files written", output), output[-2000:]
    assert "odp-local-dev-modeler" not in output  # nothing staged, so no rebuild
    # no transform message at all: no landing, and no s3:TestEvent (the "stack" existed already; on AWS S3 sends
    # it once, when the notification is first configured)
    assert "odp-local-dev-transformer" not in output
    assert {p: p.read_bytes() for p in (lake_dir / "marts").rglob("*") if p.is_file()} == before


# -- Catalunya ------------------------------------------------------------------------------------------------------

SOCRATA_ROWS = {
    "9uvn-hv6j": 134,
    "utrz-jf79": 62,
    "amca-cgrp": 1000,
    "ivft-vegh": len(rows(REGISTER_CSV)),
    "b4rr-d25b": len(rows(POPULATION_CSV)),
    "9aju-tpwc": len(rows(MUNICIPALITIES_CSV)),
    "8idm-becu": 49_797,
}


def staged_rows(lake_dir: Path, dataset: str) -> int:
    folder = lake_dir / "staging" / ("socrata_" + dataset.replace("-", "_"))
    return sum(pq.read_metadata(path).num_rows for path in folder.rglob("*.parquet"))


def test_the_default_run_stages_all_seven_socrata_datasets_with_nothing_dead_lettered(first_run):
    lake_dir, output = first_run
    assert "   dead-letter queues: empty" in output
    assert {e.dataset for e in load_catalog().by_source(Source.SOCRATA)} == set(SOCRATA_ROWS)
    for dataset, count in SOCRATA_ROWS.items():
        assert staged_rows(lake_dir, dataset) == count, dataset
    assert dead_letters(lake_dir) == []  # every DLQ empty, as the lake keeps them for the next run


def test_the_run_prints_the_catalunya_coverage_answers_computed_from_the_raw_csvs(first_run):
    _, output = first_run
    ranked = ranked_comarques()
    assert "catalunya_coverage: elderly-care places per 1,000 residents aged 65+, by comarca (42 comarques;" in output
    for label, (name, rate) in (("most", ranked[0]), ("fewest", ranked[-5])):
        assert re.search(rf"^\s+{label}\s+{re.escape(name)}\s+{float(rate):,.2f}\s", output, re.MULTILINE), name
    for name, rate in ranked[:5] + ranked[-5:]:
        assert re.search(rf"^\s+(most|fewest)?\s+{re.escape(name)}\s+{float(rate):,.2f}\s", output, re.MULTILINE), name
    _, by_comarca = expected_coverage(2020)
    places = sum(c.elderly_places for c in by_comarca.values())
    elderly = sum(c.population_65_plus for c in by_comarca.values())
    assert f"Catalunya: {1000 * places / elderly:,.2f} ({places:,} places, {elderly:,} residents aged 65+)" in output


def test_the_coverage_marts_in_the_lake_equal_the_raw_csv_answers(first_run):
    lake_dir, _ = first_run
    table = pq.read_table(lake_dir / "marts" / "aggregates" / "agg_coverage_comarca" / "agg_coverage_comarca.parquet")
    got = {r["comarca_code"]: r for r in table.to_pylist()}
    _, expected = expected_coverage(2020)
    assert set(got) == set(expected)
    for code, answer in expected.items():
        row = got[code]
        assert (row["services"], row["places"], row["elderly_places"], row["population_65_plus"]) == (
            answer.services,
            answer.places,
            answer.elderly_places,
            answer.population_65_plus,
        ), code
        assert row["elderly_places_per_1000_65_plus"] == float(answer.elderly_rate), code


def test_every_register_population_and_electricity_row_found_its_municipality(first_run):
    lake_dir, output = first_run
    report = pq.read_table(lake_dir / "marts" / "reports" / "territory_resolution" / "territory_resolution.parquet")
    by_dataset = {r["dataset_id"]: r for r in report.to_pylist()}
    for dataset in ("ivft-vegh", "b4rr-d25b", "8idm-becu"):
        row = by_dataset[dataset]
        assert (row["resolved"], row["unresolved"], row["resolution_rate"]) == (SOCRATA_ROWS[dataset], 0, 1.0)
        assert re.search(
            rf"^\s+{dataset}\s+{SOCRATA_ROWS[dataset]:,} of\s+{SOCRATA_ROWS[dataset]:,} \(100\.0%\)",
            output,
            re.MULTILINE,
        )
    # the exceptions, in the women's organisations, are counted, quarantined with their reason and told
    women = by_dataset["amca-cgrp"]
    quarantined = pq.read_table(
        lake_dir / "quarantine" / "socrata" / "amca-cgrp" / "modeler" / "fact_catalunya_services" / "rows.parquet"
    )
    assert women["unresolved"] == quarantined.num_rows == 21
    assert "  rows quarantined socrata/amca-cgrp: 21 of 1,000 rows not used by fact_catalunya_services" in output
    assert re.search(r"^  quarantined\s+0$", output, re.MULTILINE)  # no dataset was quarantined: they were staged
    assert not (lake_dir / "quarantine" / "socrata" / "ivft-vegh").exists()


def test_electricity_by_comarca_and_sector_equals_the_raw_csv_excerpt(first_run):
    lake_dir, output = first_run
    table = pq.read_table(
        lake_dir / "marts" / "aggregates" / "agg_energy_comarca_yearly" / "agg_energy_comarca_yearly.parquet"
    )
    got = {(r["comarca_code"], r["year"], r["sector_code"]): r for r in table.to_pylist()}
    for file_name, code in (("GARRAF", "17"), ("VAL D'ARAN", "39")):
        expected = energy_by_comarca_sector(file_name)
        assert {k[1:] for k in got if k[0] == code} == set(expected), file_name
        for (year, sector), (kwh, secret) in expected.items():
            row = got[(code, year, sector)]
            assert (row["consumption_kwh"] or 0, row["municipalities_confidential"]) == (kwh, secret), (
                code,
                year,
                sector,
            )
    assert re.search(r"^\s+catalunya_electricity: 2023, [0-9,.]+ GWh published, by sector$", output, re.MULTILINE)
