"""A failing quality check keeps the previous mart and raises stage.failed; a passing mart beside it publishes."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from tests.conftest import load_event
from tests.unit.modeler.staging_builder import PR_CURRENT, RUN_ID, bulk_observations

FACT_PREFIX = "marts/facts/fact_bls_observation/"  # one object per survey and year
BEST_YEAR_KEY = "marts/reports/bls_best_year/bls_best_year.parquet"
PARTITION = {"source_kind": "bulk", "survey": "pr"}
NEXT_RUN = "20260808T083000Z-77aa00bb"


def _first_build(aws, handler, context) -> None:
    aws.staging.stage_everything()
    handler.lambda_handler(load_event("modeler_staged_batch.json"), context)
    assert [e["event_type"] for e in aws.events()] == ["marts.built"]


def _batch_for(run_id: str) -> dict:
    event = load_event("modeler_staged_batch.json")
    for record in event["Records"]:
        record["body"] = record["body"].replace(RUN_ID, run_id)
    return event


def test_truncated_input_fails_row_count_delta_and_keeps_the_previous_marts(
    modeler_aws, modeler_handler, lambda_context
):
    # GIVEN published marts built from the full 2026-08 file
    _first_build(modeler_aws, modeler_handler, lambda_context)
    fact_versions = modeler_aws.all_versions(FACT_PREFIX)
    best_versions = modeler_aws.versions(BEST_YEAR_KEY)
    assert len(best_versions) == 1
    assert len(fact_versions) == len({key for key, _ in fact_versions}) > 1  # one version of each partition

    # WHEN a truncated file (10 of 282 series) is staged in its place and the next batch arrives
    full = bulk_observations(PR_CURRENT, NEXT_RUN, version_id="v-current-2")
    keep = pc.is_in(full["series_id"], value_set=pc.unique(full["series_id"]).slice(0, 10))
    modeler_aws.staging.replace("bls_observation", full.filter(keep), PARTITION)
    response = modeler_handler.lambda_handler(_batch_for(NEXT_RUN), lambda_context)

    # THEN the batch succeeds (a failed check is an outcome, not a retry) ...
    assert response == {"batchItemFailures": []}
    # ... no new version of either mart was written: readers still get the full previous version
    assert modeler_aws.all_versions(FACT_PREFIX) == fact_versions
    assert modeler_aws.versions(BEST_YEAR_KEY) == best_versions
    assert modeler_aws.mart(BEST_YEAR_KEY).num_rows == 282
    assert modeler_aws.json("marts/_lineage/marts/bls_best_year.json")["triggered_by_runs"] == [RUN_ID]

    # ... and stage.failed names the mart and the failing check
    events = modeler_aws.events()
    failed = {e["dataset"]: e for e in events if e["event_type"] == "stage.failed"}
    assert set(failed) >= {"fact_bls_observation", "bls_best_year"}
    best = failed["bls_best_year"]
    assert best["check"] == "row_count_delta(max_drop=0.5)"
    assert best["stage"] == "modeler"
    assert best["error_type"] == "QualityCheckFailed"
    assert best["run_id"] == NEXT_RUN
    assert best["keys"] == [BEST_YEAR_KEY]
    assert "10 rows against 282 published" in best["reason"]
    assert best["counts"]["rows"] == 10

    # marts that read a failed mart wait (they keep their previous version too); the rest is announced
    (built,) = [e for e in events if e["event_type"] == "marts.built"]
    assert built["counts"]["failed"] == len(failed)
    assert "dim_series" in built["skipped"] and "bls_best_year" in built["skipped"]
    assert {m["name"] for m in built["marts"]}.isdisjoint(failed)

    # the failure is recorded in the state table for operators
    record = modeler_aws.state_item("MART#bls_best_year", "LAST_FAILURE")
    assert record["run_id"] == NEXT_RUN
    assert record["checks"][0]["check"] == "row_count_delta(max_drop=0.5)"


def test_an_unknown_period_blocks_only_the_marts_whose_check_fails(modeler_aws, modeler_handler, lambda_context):
    # GIVEN published marts
    _first_build(modeler_aws, modeler_handler, lambda_context)
    fact_versions = modeler_aws.all_versions(FACT_PREFIX)

    # WHEN the file gains one row with a period that does not exist (Q07)
    full = bulk_observations(PR_CURRENT, NEXT_RUN, version_id="v-current-2")
    bad = full.slice(0, 1).set_column(2, "period", pa.array(["Q07"]))
    modeler_aws.staging.replace("bls_observation", pa.concat_tables([full, bad]), PARTITION)
    modeler_handler.lambda_handler(_batch_for(NEXT_RUN), lambda_context)

    # THEN the fact fails accepted_values(period) and keeps its previous version ...
    events = modeler_aws.events()
    failed = {e["dataset"]: e["check"] for e in events if e["event_type"] == "stage.failed"}
    assert failed == {"fact_bls_observation": "accepted_values(period)"}
    assert modeler_aws.all_versions(FACT_PREFIX) == fact_versions  # no partition of the fact was written
    assert "Q07" not in set(modeler_aws.partitioned(FACT_PREFIX)["period"].to_pylist())
    # ... while bls_best_year (Q07 is not a quarter) passes its checks: rebuilt, same bytes, nothing rewritten
    (built,) = [e for e in events if e["event_type"] == "marts.built"]
    assert "bls_best_year" in built["skipped"]
    assert len(modeler_aws.versions(BEST_YEAR_KEY)) == 1
    assert modeler_aws.state_item("MART#bls_best_year", "PUBLISHED")["run_id"] == NEXT_RUN
