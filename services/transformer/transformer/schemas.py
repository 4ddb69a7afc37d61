"""The staging tables: explicit Arrow schemas, partitions, natural keys, and their Glue column types.

One ``TableSpec`` per table is the single source of truth: the parsers cast to it, the writer checks against it,
and a test holds the Glue tables in stacks/catalog.yaml to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from datalake.athena_types import athena_columns

INGESTED_AT = pa.timestamp("us", tz="UTC")
LINEAGE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("_source", pa.string()),  # the landing object key (``key?versionId=..`` for a mirrored file)
    pa.field("_ingested_at", INGESTED_AT),  # the manifest's created_at: never the clock, so reprocessing is stable
    pa.field("_run_id", pa.string()),
)
LINEAGE_COLUMNS = tuple(f.name for f in LINEAGE_FIELDS)


@dataclass(frozen=True)
class TableSpec:
    """A staging table.

    ``natural_key`` rows are unique within the table; the newest ``_ingested_at`` wins a merge. A ``snapshot``
    table is replaced as a whole by its newest landing instead of being merged row by row.
    """

    name: str
    columns: tuple[pa.Field, ...]
    partition_keys: tuple[str, ...] = ()
    natural_key: tuple[str, ...] = ()
    value_columns: tuple[str, ...] = ()  # compared to count revised rows
    snapshot: bool = False
    plain_columns: tuple[str, ...] | None = None  # written without a dictionary; None: decided from the data

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([*self.columns, *LINEAGE_FIELDS])

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.columns)


BLS_OBSERVATION = TableSpec(
    name="bls_observation",
    columns=(
        pa.field("series_id", pa.string()),
        pa.field("year", pa.int32()),
        pa.field("period", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("footnote_codes", pa.string()),
        pa.field("source_file", pa.string()),
    ),
    partition_keys=("source_kind", "survey"),
    natural_key=("series_id", "year", "period", "source_file"),
    value_columns=("value", "footnote_codes"),
    plain_columns=("value",),
)

BLS_SERIES = TableSpec(
    name="bls_series",
    columns=(
        pa.field("series_id", pa.string()),
        pa.field("source_kind", pa.string()),  # bulk (the survey's .series file) | api (the API catalog block)
        pa.field("series_title", pa.string()),
        pa.field("seasonal", pa.string()),
        pa.field("seasonal_text", pa.string()),
        pa.field("base_year", pa.string()),
        pa.field("footnote_codes", pa.string()),
        pa.field("begin_year", pa.int32()),
        pa.field("begin_period", pa.string()),
        pa.field("end_year", pa.int32()),
        pa.field("end_period", pa.string()),
        pa.field("sector_code", pa.string()),
        pa.field("sector_name", pa.string()),
        pa.field("class_code", pa.string()),
        pa.field("class_text", pa.string()),
        pa.field("measure_code", pa.string()),
        pa.field("measure_text", pa.string()),
        pa.field("duration_code", pa.string()),
        pa.field("duration_text", pa.string()),
        pa.field("attributes_json", pa.string()),
        pa.field("source_file", pa.string()),
    ),
    partition_keys=("survey",),
    natural_key=("series_id", "source_kind"),
    value_columns=(
        "series_title",
        "seasonal",
        "base_year",
        "footnote_codes",
        "begin_year",
        "begin_period",
        "end_year",
        "end_period",
        "sector_code",
        "class_code",
        "measure_code",
        "duration_code",
        "attributes_json",
    ),
)

POPULATION = TableSpec(
    name="population",
    columns=(
        pa.field("year", pa.int32()),
        pa.field("geography_id", pa.string()),
        pa.field("geography", pa.string()),
        pa.field("population", pa.int64()),
        pa.field("vintage", pa.string()),
        pa.field("source_shape", pa.string()),
    ),
    natural_key=("geography_id", "year", "vintage"),
    value_columns=("population", "geography"),
)

STATIC_TABLES: tuple[TableSpec, ...] = (BLS_OBSERVATION, BLS_SERIES, POPULATION)

# Two-letter BLS survey codes that Athena's partition projection enumerates for the `survey` partition.
# A test checks that every survey of the catalog is listed here.
BLS_SURVEYS: tuple[str, ...] = (
    "ap",
    "bd",
    "ce",
    "ci",
    "cm",
    "cu",
    "cw",
    "cx",
    "ec",
    "ei",
    "en",
    "ep",
    "fm",
    "gg",
    "hc",
    "ii",
    "ip",
    "is",
    "jt",
    "la",
    "le",
    "li",
    "ln",
    "lu",
    "mp",
    "nb",
    "oe",
    "pc",
    "pr",
    "sa",
    "sm",
    "su",
    "tu",
    "wd",
    "wm",
    "wp",
    "ws",
)

_NON_IDENT = re.compile(r"[^a-z0-9_]+")


def socrata_table_name(dataset_id: str) -> str:
    """``9uvn-hv6j`` -> ``socrata_9uvn_hv6j``."""
    return "socrata_" + _NON_IDENT.sub("_", dataset_id.lower()).strip("_")


def snake_case(name: str) -> str:
    """A Socrata field name as a column name: ``:@computed_region_bh64_c7uy`` -> ``computed_region_bh64_c7uy``."""
    text = _NON_IDENT.sub("_", name.strip().lower()).strip("_")
    if not text:
        raise ValueError(f"field name {name!r} has no usable characters")
    return f"c_{text}" if text[0].isdigit() else text


def glue_columns(schema: pa.Schema) -> list[dict[str, str]]:
    """A staging table's Glue columns (its partition columns are in its paths, not in ``schema``)."""
    return athena_columns(schema)
