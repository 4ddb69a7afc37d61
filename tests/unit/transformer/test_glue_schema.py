"""The Glue tables Athena queries match the Parquet the transformer writes: names, order and types."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest

from datalake.athena_types import athena_type
from datalake.catalog import load_catalog
from datalake.contracts import Source
from localrun.template import Resolver, default_parameters, load_template, resources_of
from tests.unit.transformer.landing_fixtures import commit_all
from tests.unit.transformer.support import stage
from transformer.schemas import BLS_OBSERVATION, BLS_SERIES, BLS_SURVEYS, POPULATION, STATIC_TABLES


def template_tables() -> dict[str, dict]:
    template = load_template()
    resolver = Resolver(template, default_parameters(template))
    resolver.physical["LakeBucket"] = {"Ref": "odp-local-dev-lake-123456789012"}
    resolver.physical["GlueDatabase"] = {"Ref": "opendata_dev"}
    tables = {}
    for res in resources_of(template, "AWS::Glue::Table").values():
        props = resolver.resolve(res["Properties"])
        tables[props["TableInput"]["Name"]] = props["TableInput"]
    return tables


def parquet_columns(data: bytes) -> list[tuple[str, str]]:
    schema = pq.read_schema(io.BytesIO(data))
    return [(f.name, athena_type(f.type)) for f in schema]


@pytest.mark.parametrize("spec", STATIC_TABLES, ids=lambda s: s.name)
def test_template_declares_each_staging_table_as_its_spec(spec):
    table = template_tables()[spec.name]
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    assert columns == [(f.name, athena_type(f.type)) for f in spec.schema]
    assert [k["Name"] for k in table.get("PartitionKeys", [])] == list(spec.partition_keys)
    assert table["StorageDescriptor"]["Location"] == f"s3://odp-local-dev-lake-123456789012/staging/{spec.name}/"
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")


def test_partition_projection_finds_every_partition_the_transformer_writes():
    tables = template_tables()
    observation = tables["bls_observation"]["Parameters"]
    # the location template is the writer's layout, with the ${!...} escapes resolved as CloudFormation does
    assert observation["storage.location.template"] == (
        "s3://odp-local-dev-lake-123456789012/staging/bls_observation/source_kind=${source_kind}/survey=${survey}/"
    )
    assert observation["projection.source_kind.values"].split(",") == ["api", "bulk"]
    # every survey the catalog collects (API series prefixes, bulk surveys) is enumerated, for both tables
    catalog = load_catalog()
    surveys = {e.dataset[:2].lower() for e in catalog.by_source(Source.BLS_API)}
    surveys |= {e.dataset for e in catalog.by_source(Source.BLS_BULK)}
    for name in ("bls_observation", "bls_series"):
        listed = set(tables[name]["Parameters"]["projection.survey.values"].split(","))
        assert surveys <= listed, sorted(surveys - listed)
        assert listed == set(BLS_SURVEYS)


def test_glue_columns_match_the_parquet_the_transformer_staged(aws):
    # GIVEN real landings of every source, staged
    keys = commit_all(aws)
    for key in keys.values():
        assert stage(aws, key)["status"] == "staged"
    tables = template_tables()
    # THEN every staged file's Parquet schema is exactly its Glue table's columns
    for spec in (BLS_OBSERVATION, BLS_SERIES, POPULATION):
        files = aws.keys(f"staging/{spec.name}/")
        assert files, f"nothing staged for {spec.name}"
        declared = [(c["Name"], c["Type"]) for c in tables[spec.name]["StorageDescriptor"]["Columns"]]
        for key in files:
            assert parquet_columns(aws.get(key)) == declared, key
            # and the file sits where the Glue table (with its projection) looks for it
            partition = "/".join(key.split("/")[2:-1])
            assert [p.split("=")[0] for p in partition.split("/") if p] == list(spec.partition_keys)
    # AND the Socrata table the transformer registered at run time matches its staged file
    socrata = aws.glue.get_table(DatabaseName="opendata_test", Name="socrata_9uvn_hv6j")["Table"]
    [staged] = aws.keys("staging/socrata_9uvn_hv6j/")
    registered = [(c["Name"], c["Type"]) for c in socrata["StorageDescriptor"]["Columns"]]
    assert parquet_columns(aws.get(staged)) == registered
    assert socrata["StorageDescriptor"]["Location"] == "s3://test-lake/staging/socrata_9uvn_hv6j/"


def test_the_local_runtime_creates_the_staging_tables_from_the_template(aws):
    # GIVEN the template's Glue tables, created in moto the way localrun/cloud.py does
    template = load_template()
    resolver = Resolver(template, default_parameters(template))
    resolver.physical["LakeBucket"] = {"Ref": "test-lake"}
    resolver.physical["GlueDatabase"] = {"Ref": "opendata_test"}
    for res in resources_of(template, "AWS::Glue::Table").values():
        props = resolver.resolve(res["Properties"])
        aws.glue.create_table(DatabaseName=props["DatabaseName"], TableInput=props["TableInput"])
    # THEN Glue holds them with their projection settings intact
    table = aws.glue.get_table(DatabaseName="opendata_test", Name="bls_observation")["Table"]
    assert table["Parameters"]["projection.enabled"] == "true"
    assert [k["Name"] for k in table["PartitionKeys"]] == ["source_kind", "survey"]
    assert json.dumps(table["StorageDescriptor"]["Columns"]).count('"Name"') == len(BLS_OBSERVATION.schema)
