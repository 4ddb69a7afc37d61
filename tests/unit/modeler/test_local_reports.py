"""localrun.reports reads the marts from an S3 lake as from a folder, prints the answers and renders the report."""

from __future__ import annotations

import pytest

from localrun.reports import Lake, print_answers, render_report
from tests.conftest import load_event


def test_an_s3_lake_gives_the_answers_and_the_charts(modeler_aws, modeler_handler, lambda_context, tmp_path):
    # GIVEN marts built in the (moto) bucket
    modeler_aws.staging.stage_everything()
    modeler_handler.lambda_handler(load_event("modeler_staged_batch.json"), lambda_context)
    lake = Lake(f"s3://{modeler_aws.bucket}")

    # THEN a mart reads back exactly as published, the lineage document beside it is skipped as data
    best = lake.mart("bls_best_year")
    assert best.equals(modeler_aws.mart("marts/reports/bls_best_year/bls_best_year.parquet"))
    assert lake.lineage("bls_best_year")["mart"] == "bls_best_year"
    lines: list[str] = []
    print_answers(lake, lines.append)
    assert any("322,069,808.00" in line for line in lines)
    assert any(line.strip().startswith("bls_best_year: 282 series") for line in lines)

    # AND the report renders from S3 into a folder (an S3 lake needs one)
    with pytest.raises(ValueError, match="needs --out"):
        render_report(lake)
    written = render_report(lake, tmp_path / "out")
    assert sorted(written) == [
        "best_year_distribution",
        "bls_population_correlation",
        "population_over_time",
        "prs30006032_vs_population",
        "report",
    ]
    assert all(path.stat().st_size > 0 for path in written.values())


def test_an_empty_lake_says_what_is_missing(tmp_path):
    lines: list[str] = []
    print_answers(Lake(str(tmp_path)), lines.append)
    assert [line.strip() for line in lines] == [
        f"{name}: not built yet (its staging inputs are missing)"
        for name in ("population_stats", "bls_best_year", "series_population", "bls_population_correlation")
    ]
    with pytest.raises(ValueError, match="no report marts"):
        render_report(tmp_path)
