"""The registry is consistent, and template.yaml's Glue tables and Athena queries match it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from localrun.template import load_template, resources_of
from modeler.registry import (
    MARTS,
    REPORTS,
    MartSpec,
    RegistryError,
    by_name,
    downstream_of,
    glue_columns,
    glue_partition_keys,
    in_build_order,
    mart,
    staging,
)


def test_every_mart_is_built_after_the_marts_it_reads():
    order = [m.name for m in in_build_order()]
    assert sorted(order) == sorted(m.name for m in MARTS)
    for spec in MARTS:
        for source in spec.inputs:
            if source.layer == "mart":
                assert order.index(source.name) < order.index(spec.name), (source.name, spec.name)


def test_a_cycle_or_an_unknown_input_is_refused():
    def spec(name: str, *inputs) -> MartSpec:
        return MartSpec(name, "facts", "", tuple(inputs), lambda i, p: i, pa.schema([]), (), ())

    with pytest.raises(RegistryError, match="cycle"):
        in_build_order([spec("a", mart("b")), spec("b", mart("a"))])
    with pytest.raises(RegistryError, match="unknown mart"):
        in_build_order([spec("a", mart("nope"))])
    assert staging("socrata_*").matches("socrata_9uvn_hv6j") and not staging("population").matches("populations")


def test_every_mart_declares_checks_a_key_and_fixed_report_paths():
    for spec in MARTS:
        assert spec.checks, spec.name
        assert set(spec.key) <= set(spec.schema.names), spec.name
        assert any(type(c).__name__ == "RowCountDelta" for c in spec.checks) or spec.name == "population_stats"
    reports = by_name()
    assert reports["population_stats"].data_key == "marts/reports/population_stats/population_stats.parquet"
    assert reports["bls_best_year"].prefix == "marts/reports/bls_best_year/"
    assert reports["series_population"].prefix == "marts/reports/series_population/"
    assert downstream_of("fact_bls_observation") == {
        "dim_series",
        "dim_time",
        "agg_bls_series_yearly",
        "bls_population_correlation",
    }


def test_the_template_catalogues_every_mart_with_its_columns_and_folder():
    template = load_template()
    tables = {
        r["Properties"]["TableInput"]["Name"]: r["Properties"]
        for r in resources_of(template, "AWS::Glue::Table").values()
    }
    for spec in MARTS:
        assert spec.table_name in tables, f"no Glue table for mart {spec.name}"
        props = tables[spec.table_name]
        assert props["DatabaseName"] == {"Ref": "GlueDatabase"}
        descriptor = props["TableInput"]["StorageDescriptor"]
        assert descriptor["Columns"] == glue_columns(spec), spec.name
        # a partitioned mart declares its partitions, and Athena finds them by projection (no crawler)
        assert props["TableInput"].get("PartitionKeys", []) == glue_partition_keys(spec), spec.name
        if spec.partitioned:
            parameters = props["TableInput"]["Parameters"]
            assert parameters["projection.enabled"] == "true"
            assert parameters["storage.location.template"] == {
                "Fn::Sub": f"s3://${{LakeBucket}}/{spec.prefix}survey=${{!survey}}/year=${{!year}}/"
            }
        assert descriptor["Location"] == {"Fn::Sub": f"s3://${{LakeBucket}}/{spec.prefix}"}
        assert descriptor["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")


def test_the_template_has_a_named_query_per_report():
    queries = [r["Properties"] for r in resources_of(load_template(), "AWS::Athena::NamedQuery").values()]
    for report in REPORTS:
        matching = [q for q in queries if f"FROM {report}" in q["QueryString"]]
        assert len(matching) == 1, report
        assert matching[0]["Database"] == {"Ref": "GlueDatabase"}
        assert matching[0]["WorkGroup"] == {"Ref": "AthenaWorkGroup"}
