"""The one Arrow -> Athena type map: every type the pipeline writes, and a refusal for the others."""

from __future__ import annotations

import pyarrow as pa
import pytest

from datalake.athena_types import NoAthenaType, athena_columns, athena_type


@pytest.mark.parametrize(
    ("arrow_type", "hive"),
    [
        (pa.string(), "string"),
        (pa.int32(), "int"),
        (pa.int64(), "bigint"),
        (pa.float64(), "double"),
        (pa.bool_(), "boolean"),
        (pa.date32(), "date"),
        (pa.timestamp("us", tz="UTC"), "timestamp"),
        (pa.timestamp("ms"), "timestamp"),
    ],
)
def test_each_written_arrow_type_has_its_athena_type(arrow_type, hive):
    assert athena_type(arrow_type) == hive


@pytest.mark.parametrize("arrow_type", [pa.float32(), pa.int16(), pa.large_string(), pa.list_(pa.string())])
def test_a_type_the_pipeline_does_not_write_is_refused_not_guessed(arrow_type):
    with pytest.raises(NoAthenaType, match=str(arrow_type)):
        athena_type(arrow_type)


def test_a_schema_becomes_glue_columns_in_order_without_its_partition_columns():
    schema = pa.schema([("series_id", pa.string()), ("year", pa.int32()), ("value", pa.float64())])
    assert athena_columns(schema, exclude=("year",)) == [
        {"Name": "series_id", "Type": "string"},
        {"Name": "value", "Type": "double"},
    ]
