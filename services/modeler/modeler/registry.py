"""The mart registry: every mart, in one place, with its inputs, its output schema, its key and its quality checks.

Inputs are staging tables (``staging("bls_observation", select=...)``; a name ending in ``*`` matches a family,
e.g. ``socrata_*``) or other marts (``mart("fact_bls_observation")``). A ``select`` narrows a staging table to
the rows the mart uses; lineage is taken from those rows only, so ``bls_best_year`` names exactly the landing
objects of the ``pr.data.0.Current`` file it came from.

``version`` is part of a mart's input fingerprint: bump it when the mart's logic changes, so the next build
republishes it even though its inputs did not change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache

import pyarrow as pa
import pyarrow.compute as pc

from datalake.athena_types import athena_columns
from datalake.catalog import load_catalog
from datalake.contracts import Source
from modeler import domain as d
from modeler.catalunya.marts import CATALUNYA_MARTS
from modeler.checks import (
    AcceptedValues,
    CoversInputKeys,
    InRange,
    NotNull,
    RowCount,
    RowCountDelta,
    UniqueKey,
)
from modeler.spec import LINEAGE_PREFIX, Built, Input, Inputs, MartSpec, Rejected, mart, staging

__all__ = [
    "LINEAGE_PREFIX",
    "MARTS",
    "REPORTS",
    "Built",
    "Input",
    "Inputs",
    "MartSpec",
    "RegistryError",
    "Rejected",
    "by_name",
    "downstream_of",
    "glue_columns",
    "glue_partition_keys",
    "in_build_order",
    "mart",
    "staging",
]

# ----------------------------------------------------------------------------------------------------------------
# Selections
# ----------------------------------------------------------------------------------------------------------------

CURRENT_PR = "source_kind=bulk, source_file=pr.data.0.Current"
PREFERRED_POPULATION = (
    f"geography_id={d.NATION_GEOGRAPHY_ID}; one vintage, preferring {', then '.join(d.POPULATION_VINTAGE_PREFERENCE)}"
)


def _current_pr(observations: pa.Table) -> pa.Table:
    return d.current_bulk_file(observations, "pr")


_GROUP_FILE = re.compile(r"^part-(?P<group>.+)-[0-9a-f]{16}\.parquet$")


def _current_pr_file(key: str, partition: Mapping[str, str]) -> bool:
    """The staging file of the bulk file ``pr.data.0.Current``, by its name (``part-{group}-{sha16}.parquet``): the
    reports read it alone, not the whole table. A file not named by its group is read (the rows decide)."""
    if partition.get("source_kind") != "bulk" or partition.get("survey") != "pr":
        return False
    named = _GROUP_FILE.match(key.rsplit("/", 1)[-1])
    return named is None or named["group"].startswith("pr.data.0.")


def _correlation(inputs: Inputs, _previous: pa.Table | None) -> pa.Table:
    """The correlation reads the yearly aggregate of the population's years only (its partitions, when it is
    partitioned), and the list of every series with an annual value in any year."""
    yearly, population = inputs["agg_bls_series_yearly"], inputs["population"]
    if not hasattr(yearly, "scan"):
        return d.bls_population_correlation(yearly, population)
    years = {y for y in population["year"].to_pylist() if y is not None}
    series: set[str] = set()
    for piece in yearly.scan(["series_id", "annual_value"]):
        series.update(pc.unique(piece.filter(pc.is_valid(piece["annual_value"]))["series_id"]).to_pylist())
    rows = yearly.read(["series_id", "year", "annual_value"], years=lambda year: year in years)
    return d.bls_population_correlation(rows, population, series)


@cache
def catalog_series_names() -> dict[str, str]:
    """The human names of the BLS API series in the pipeline's catalog (the shared layer's catalog.toml)."""
    return {e.dataset: e.name for e in load_catalog().by_source(Source.BLS_API)}


# ----------------------------------------------------------------------------------------------------------------
# The marts
# ----------------------------------------------------------------------------------------------------------------

MARTS: tuple[MartSpec, ...] = (
    MartSpec(
        name="fact_bls_observation",
        kind="facts",
        description="One row per series, year and period across the BLS API and bulk files.",
        version="2",  # 2: partitioned by survey and year
        inputs=(staging("bls_observation"),),
        build=lambda i, _prev: d.fact_bls_observation(i["bls_observation"]),
        schema=d.FACT_BLS_SCHEMA,
        key=("series_id", "year", "period"),
        partition_by=("survey", "year"),
        scatter_schema=d.FACT_INPUT_SCHEMA,
        checks=(
            NotNull(("series_id", "survey", "year", "period", "time_key", "source_kind")),
            UniqueKey(("series_id", "year", "period")),
            AcceptedValues("period", d.ALL_PERIODS),
            AcceptedValues("source_kind", ("api", "bulk")),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="dim_series",
        kind="dimensions",
        version="2",  # 2: titles fall back to the catalog's names
        description="Every series with observations, with codes and titles from the mapping files or API catalog.",
        inputs=(mart("fact_bls_observation"), staging("bls_series", required=False)),
        build=lambda i, _prev: d.dim_series(i["fact_bls_observation"], i.get("bls_series"), catalog_series_names()),
        schema=d.DIM_SERIES_SCHEMA,
        key=("series_id",),
        checks=(
            NotNull(("series_id", "survey", "observations")),
            UniqueKey(("series_id",)),
            AcceptedValues("seasonal", ("S", "U")),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="dim_time",
        kind="dimensions",
        description="Every BLS period (months, quarters, annual averages) of every year in the data.",
        inputs=(
            mart("fact_bls_observation"),
            staging("population", select=d.preferred_population, selection=PREFERRED_POPULATION, required=False),
        ),
        build=lambda i, _prev: d.dim_time(i["fact_bls_observation"], i.get("population")),
        schema=d.DIM_TIME_SCHEMA,
        key=("time_key",),
        checks=(
            NotNull(("time_key", "year", "period", "period_type", "start_date", "end_date")),
            UniqueKey(("time_key",)),
            AcceptedValues("period", d.ALL_PERIODS),
            AcceptedValues("period_type", d.PERIOD_TYPES),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="agg_bls_series_yearly",
        kind="aggregates",
        description="Per series and year: sub-annual count, sum, mean, min, max; the annual average; annual_value.",
        version="2",  # 2: partitioned like the fact, each partition from the fact's
        inputs=(mart("fact_bls_observation"),),
        build=lambda i, _prev: d.agg_bls_series_yearly(i["fact_bls_observation"]),
        schema=d.YEARLY_SCHEMA,
        key=("series_id", "year"),
        partition_by=("survey", "year"),
        checks=(
            NotNull(("series_id", "year", "period_type", "observations")),
            UniqueKey(("series_id", "year")),
            AcceptedValues("period_type", d.PERIOD_TYPES),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="agg_population_yearly",
        kind="aggregates",
        description="US population per year for every staged vintage; is_preferred_vintage marks the reports' one.",
        inputs=(staging("population"),),
        build=lambda i, _prev: d.population_yearly(i["population"]),
        schema=d.POPULATION_YEARLY_SCHEMA,
        key=("geography_id", "vintage", "year"),
        checks=(
            NotNull(("geography_id", "vintage", "year", "population", "is_preferred_vintage")),
            UniqueKey(("geography_id", "vintage", "year")),
            InRange("population", 1, None),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="population_stats",
        kind="reports",
        description="Mean, population (ddof=0) and sample (ddof=1) std of annual US population 2013-2018.",
        inputs=(staging("population", select=d.preferred_population, selection=PREFERRED_POPULATION),),
        build=lambda i, _prev: d.population_stats(i["population"], 2013, 2018),
        schema=d.POPULATION_STATS_SCHEMA,
        key=("geography_id",),
        checks=(
            RowCount(1, 1),
            NotNull(("vintage", "years_present", "mean_population", "std_population_ddof0")),
            InRange("years_present", 1, 6),
            InRange("mean_population", 1, None),
            InRange("std_population_ddof0", 0, None),
        ),
    ),
    MartSpec(
        name="bls_best_year",
        kind="reports",
        description="Per series of pr.data.0.Current: the year with the largest Q01-Q04 sum (Q05 if annual only).",
        inputs=(staging("bls_observation", select=_current_pr, selection=CURRENT_PR, files=_current_pr_file),),
        build=lambda i, _prev: d.bls_best_year(i["bls_observation"]),
        schema=d.BEST_YEAR_SCHEMA,
        key=("series_id",),
        chunk_by="series_id",  # per series: built from the file in chunks of whole series
        checks=(
            NotNull(("series_id",)),
            UniqueKey(("series_id",)),
            CoversInputKeys("series_id", "bls_observation"),
            InRange("year", 1900, 2100),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="series_population",
        kind="reports",
        description="PRS30006032 Q01 of pr.data.0.Current, every year, with that year's US population (or null).",
        inputs=(
            staging("bls_observation", select=_current_pr, selection=CURRENT_PR, files=_current_pr_file),
            staging("population", select=d.preferred_population, selection=PREFERRED_POPULATION),
        ),
        build=lambda i, _prev: d.series_population(i["bls_observation"], i["population"], "PRS30006032", "Q01"),
        schema=d.SERIES_POPULATION_SCHEMA,
        key=("year",),
        chunk_by="series_id",  # one series: the chunk that holds it builds the report
        checks=(
            NotNull(("series_id", "year", "period", "value")),
            UniqueKey(("year",)),
            AcceptedValues("series_id", ("PRS30006032",)),
            AcceptedValues("period", ("Q01",)),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="bls_population_correlation",
        kind="reports",
        description="Pearson correlation of each series' annual value with US population over their common years.",
        inputs=(
            mart("agg_bls_series_yearly"),
            staging("population", select=d.preferred_population, selection=PREFERRED_POPULATION),
        ),
        build=_correlation,
        schema=d.CORRELATION_SCHEMA,
        key=("series_id",),
        checks=(
            NotNull(("series_id", "n_years")),
            UniqueKey(("series_id",)),
            InRange("pearson_r", -1.0, 1.0),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    # Catalunya: the territory dimension, social services, population, electricity (modeler.catalunya)
    *CATALUNYA_MARTS,
)

REPORTS = ("population_stats", "bls_best_year", "series_population", "bls_population_correlation")


class RegistryError(ValueError):
    """The registry is inconsistent (an unknown input mart, a cycle, a duplicate name)."""


def by_name(marts: Iterable[MartSpec] = MARTS) -> dict[str, MartSpec]:
    return {m.name: m for m in marts}


def in_build_order(marts: Iterable[MartSpec] = MARTS) -> list[MartSpec]:
    """The marts ordered so every mart comes after the marts it reads (declaration order otherwise).

    Raises
    ------
    RegistryError
        On a duplicate name, an input naming an unknown mart, or a cycle.
    """
    marts = list(marts)
    specs = by_name(marts)
    if len(specs) != len(marts):
        raise RegistryError("duplicate mart names in the registry")
    ordered: list[MartSpec] = []
    state: dict[str, str] = {}

    def visit(spec: MartSpec, path: tuple[str, ...]) -> None:
        if state.get(spec.name) == "done":
            return
        if state.get(spec.name) == "visiting":
            raise RegistryError(f"cycle in the registry: {' -> '.join((*path, spec.name))}")
        state[spec.name] = "visiting"
        for source in spec.inputs:
            if source.layer == "mart":
                if source.name not in specs:
                    raise RegistryError(f"{spec.name} reads unknown mart {source.name}")
                visit(specs[source.name], (*path, spec.name))
        state[spec.name] = "done"
        ordered.append(spec)

    for spec in marts:
        visit(spec, ())
    return ordered


def downstream_of(name: str, marts: Iterable[MartSpec] = MARTS) -> set[str]:
    """Every mart that reads ``name`` (a mart), directly or through other marts."""
    marts = list(marts)
    found: set[str] = set()
    frontier = {name}
    while frontier:
        nxt = {m.name for m in marts for i in m.inputs if i.layer == "mart" and i.name in frontier} - found
        found |= nxt
        frontier = nxt
    return found


# ----------------------------------------------------------------------------------------------------------------
# Glue / Athena: the column types the catalog declares for each mart (stacks/catalog.yaml is checked against these)
# ----------------------------------------------------------------------------------------------------------------


def glue_columns(spec: MartSpec) -> list[dict[str, str]]:
    """The columns a mart's files hold (a partitioned mart's partition columns are in its paths: Hive's layout)."""
    return athena_columns(spec.schema, exclude=spec.partition_by)


def glue_partition_keys(spec: MartSpec) -> list[dict[str, str]]:
    """A partitioned mart's partition columns, in path order (``survey=pr/year=2024``)."""
    types = {"survey": "string", "year": "int"}
    return [{"Name": name, "Type": types[name]} for name in spec.partition_by]
