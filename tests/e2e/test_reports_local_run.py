"""The whole local pipeline (`python -m localrun`) over the bundled replay: scheduler -> extractor -> transformer ->
modeler -> notifier on moto's server, sources served on 127.0.0.1. The reports it prints and the marts it leaves in
the lake folder are compared with answers computed from the raw replay files; a second run changes nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from localrun.template import ROOT
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


def local_run(lake_dir: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "localrun", "--lake-dir", str(lake_dir), "--source", "bls_bulk", "--source", "datausa"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, str]:
    lake_dir = tmp_path_factory.mktemp("lake")
    return lake_dir, local_run(lake_dir)


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
    output = local_run(lake_dir)
    assert re.search(r"== lake .*: 0 files written", output), output[-2000:]
    assert "odp-local-dev-modeler" not in output  # nothing staged, so no rebuild
    # no transform message at all: no landing, and no s3:TestEvent (the "stack" existed already; on AWS S3 sends
    # it once, when the notification is first configured)
    assert "odp-local-dev-transformer" not in output
    assert {p: p.read_bytes() for p in (lake_dir / "marts").rglob("*") if p.is_file()} == before
