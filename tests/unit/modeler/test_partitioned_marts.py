"""The partitioned fact and yearly aggregate: equal to the unpartitioned marts on the real data; a build rewrites
only the partitions whose inputs changed, and the others keep their objects (the same versions)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from modeler import domain as d
from modeler.registry import catalog_series_names
from tests.conftest import load_event
from tests.unit.modeler.staging_builder import (
    PR_CURRENT,
    PR_DIR,
    RUN_ID,
    bulk_observations,
    population_rows,
    series_rows,
)

FACT = "marts/facts/fact_bls_observation/"
YEARLY = "marts/aggregates/agg_bls_series_yearly/"
BULK_PR = {"source_kind": "bulk", "survey": "pr"}
NEXT_RUN = "20260808T083000Z-77aa00bb"


def batch(run_id: str = RUN_ID) -> dict:
    event = load_event("modeler_staged_batch.json")
    for record in event["Records"]:
        record["body"] = record["body"].replace(RUN_ID, run_id)
    return event


def key_sorted(table: pa.Table, schema: pa.Schema, key: list[str]) -> pa.Table:
    return table.select(schema.names).cast(schema).sort_by([(k, "ascending") for k in key])


@pytest.fixture
def staged(modeler_aws):
    """The 2026-08 release (Current and AllData), its series, the population, and an API series of another survey."""
    current = bulk_observations(PR_CURRENT, RUN_ID, version_id="v-current-1")
    all_data = bulk_observations(PR_DIR / "pr.data.1.AllData", RUN_ID, version_id="v-alldata-1")
    keys = {
        "current": modeler_aws.staging.write("bls_observation", current, BULK_PR),
        "all_data": modeler_aws.staging.write("bls_observation", all_data, BULK_PR),
    }
    api = current.filter(pc.equal(current["series_id"], "PRS30006032")).slice(0, 40)
    api = api.set_column(0, "series_id", pa.array(["LNS14000000"] * api.num_rows))
    api = api.set_column(api.schema.get_field_index("source_file"), "source_file", pa.array(["api"] * api.num_rows))
    modeler_aws.staging.write("bls_observation", api, {"source_kind": "api", "survey": "ln"})
    modeler_aws.staging.write("bls_series", series_rows(), {"survey": "pr"})
    modeler_aws.staging.write("population", population_rows())
    return {"current": current, "all_data": all_data, "api": api, "keys": keys}


def test_the_partitioned_marts_equal_the_unpartitioned_ones_on_the_real_data(
    modeler_aws, modeler_handler, lambda_context, staged
):
    assert modeler_handler.lambda_handler(batch(), lambda_context) == {"batchItemFailures": []}

    # today's marts, built whole from every staged row, as the modeler built them before it partitioned
    staging = pa.concat_tables(
        [
            staged["current"].append_column("source_kind", pa.array(["bulk"] * staged["current"].num_rows)),
            staged["all_data"].append_column("source_kind", pa.array(["bulk"] * staged["all_data"].num_rows)),
            staged["api"].append_column("source_kind", pa.array(["api"] * staged["api"].num_rows)),
        ]
    )
    staging = staging.append_column("survey", pc.utf8_lower(pc.utf8_slice_codeunits(staging["series_id"], 0, 2)))
    whole_fact = d.fact_bls_observation(staging)
    whole_yearly = d.agg_bls_series_yearly(whole_fact)
    fact_key = ["series_id", "year", "period"]

    # THEN the partitions of the fact, read together, are today's fact, row for row
    fact = modeler_aws.partitioned(FACT)
    assert fact.num_rows == whole_fact.num_rows > 77_000  # every key once (Current and AllData overlap)
    assert key_sorted(fact, d.FACT_BLS_SCHEMA, fact_key).equals(key_sorted(whole_fact, d.FACT_BLS_SCHEMA, fact_key))
    # AND one partition per survey and year: pr 1947-2026, ln for the API series' years
    keys = modeler_aws.keys(FACT)
    assert {k.split("/")[3] for k in keys} == {"survey=ln", "survey=pr"}
    assert len([k for k in keys if "survey=pr/" in k]) == 2026 - 1947 + 1
    # AND the yearly aggregate's partitions are today's aggregate
    yearly = modeler_aws.partitioned(YEARLY)
    assert key_sorted(yearly, d.YEARLY_SCHEMA, ["series_id", "year"]).equals(
        key_sorted(whole_yearly, d.YEARLY_SCHEMA, ["series_id", "year"])
    )
    # AND the marts read from them are today's, built from the whole tables
    series_key = ["series_id"]
    dim_series = modeler_aws.mart("marts/dimensions/dim_series/dim_series.parquet")
    population = d.preferred_population(population_rows())
    expected = d.dim_series(whole_fact, series_rows(), catalog_series_names())
    assert key_sorted(dim_series, d.DIM_SERIES_SCHEMA, series_key).equals(
        key_sorted(expected, d.DIM_SERIES_SCHEMA, series_key)
    )
    dim_time = modeler_aws.mart("marts/dimensions/dim_time/dim_time.parquet")
    assert key_sorted(dim_time, d.DIM_TIME_SCHEMA, ["time_key"]).equals(
        key_sorted(d.dim_time(whole_fact, population), d.DIM_TIME_SCHEMA, ["time_key"])
    )
    correlation = modeler_aws.mart("marts/reports/bls_population_correlation/bls_population_correlation.parquet")
    expected = d.bls_population_correlation(whole_yearly, population)
    assert key_sorted(correlation, d.CORRELATION_SCHEMA, series_key).equals(
        key_sorted(expected, d.CORRELATION_SCHEMA, series_key)
    )


def test_a_revision_rewrites_only_its_partition_and_the_others_keep_their_objects(
    modeler_aws, modeler_handler, lambda_context, staged
):
    # GIVEN published partitioned marts
    modeler_handler.lambda_handler(batch(), lambda_context)
    modeler_aws.events()
    fact_before = dict(modeler_aws.all_versions(FACT))
    yearly_before = dict(modeler_aws.all_versions(YEARLY))

    # WHEN a new Current file revises one value, PRS30006032 2024 Q01, and the next batch arrives
    current = bulk_observations(PR_CURRENT, NEXT_RUN, version_id="v-current-2")
    target = pc.and_(
        pc.and_(pc.equal(current["series_id"], "PRS30006032"), pc.equal(current["year"], 2024)),
        pc.equal(current["period"], "Q01"),
    )
    assert pc.sum(target).as_py() == 1
    revised = current.set_column(3, "value", pc.if_else(target, pc.add(current["value"], 1.0), current["value"]))
    modeler_aws.s3.delete_object(Bucket=modeler_aws.bucket, Key=staged["keys"]["current"])
    modeler_aws.staging.write("bls_observation", revised, BULK_PR)
    assert modeler_handler.lambda_handler(batch(NEXT_RUN), lambda_context) == {"batchItemFailures": []}

    # THEN exactly one partition of the fact, and the same one of the aggregate, got a new version
    changed = "survey=pr/year=2024/"
    fact_after = modeler_aws.all_versions(FACT)
    new_fact = [key for key, version in fact_after if (key, version) not in fact_before.items()]
    assert new_fact == [f"{FACT}{changed}fact_bls_observation.parquet"]
    new_yearly = [
        key for key, version in modeler_aws.all_versions(YEARLY) if (key, version) not in yearly_before.items()
    ]
    assert new_yearly == [f"{YEARLY}{changed}agg_bls_series_yearly.parquet"]
    # AND every other partition is the very object it was (the same version), the ln survey untouched
    kept = {key: version for key, version in fact_after if key not in new_fact}
    assert kept == {key: version for key, version in fact_before.items() if key not in new_fact}
    assert len(kept) == len(fact_before) - 1
    # AND the revised value is the one the fact now holds
    fact = modeler_aws.partitioned(FACT)
    row = fact.filter(
        pc.and_(
            pc.and_(pc.equal(fact["series_id"], "PRS30006032"), pc.equal(fact["year"], 2024)),
            pc.equal(fact["period"], "Q01"),
        )
    ).to_pylist()
    assert [r["value"] for r in row] == [revised.filter(target)["value"][0].as_py()]
    # AND the fact's lineage says how many partitions were written
    lineage = modeler_aws.json("marts/_lineage/marts/fact_bls_observation.json")
    assert (lineage["partitions_written"], lineage["partitions_deleted"]) == (1, 0)


def test_an_unchanged_batch_reads_no_partition_and_writes_nothing(modeler_aws, modeler_handler, lambda_context, staged):
    modeler_handler.lambda_handler(batch(), lambda_context)
    before = modeler_aws.all_versions("marts/")
    modeler_aws.events()

    modeler_handler.lambda_handler(batch(NEXT_RUN), lambda_context)

    assert modeler_aws.all_versions("marts/") == before
    [built] = [e for e in modeler_aws.events() if e["event_type"] == "marts.built"]
    assert built["marts"] == []
