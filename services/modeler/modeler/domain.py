"""Modeler domain: the marts as pure Table -> Table functions (Dagster-style assets without the framework).

No boto3, no environment, no Powertools. Every function takes Arrow tables (the staging tables already read, or
other marts) and returns an Arrow table; the registry (``modeler.registry``) says which function builds which
mart from which inputs, and the orchestrator (``modeler.build``) reads, checks and publishes.

Rules that matter for the answers (DESIGN section 5):

* ``bls_best_year``: per series, the year with the largest sum of Q01-Q04; series published annually only (no
  quarterly row at all) use Q05; ties go to the earliest year; one row per series in the file. Sums are exact:
  values are summed as integers in millionths (BLS prints at most three decimals), so a tie is a tie and not a
  float rounding accident; the reported value is that exact sum as the nearest double.
* Population vintage: when several vintages are staged, the reports use one vintage for every year, chosen by
  ``POPULATION_VINTAGE_PREFERENCE`` (the ACS 1-year estimate first: it is the survey's estimate *for* that year,
  whereas a 5-year estimate is a rolling average of five years). Years that vintage lacks (2020 for the ACS 1-year
  estimate) stay null; they are never filled from another vintage, so a series never mixes definitions.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

QUARTERS = ("Q01", "Q02", "Q03", "Q04")
MONTHS = tuple(f"M{m:02d}" for m in range(1, 13))
ANNUAL_PERIODS = ("Q05", "M13", "A01")
ALL_PERIODS = (*MONTHS, "M13", *QUARTERS, "Q05", "A01")
PERIOD_TYPES = ("month", "quarter", "annual")

NATION_GEOGRAPHY_ID = "01000US"
POPULATION_VINTAGE_PREFERENCE = ("ACS 1-year Estimate", "ACS 5-year Estimate")
CURRENT_FILE_SUFFIX = ".0.Current"
MICRO = 1_000_000  # values are summed exactly, as integers in millionths


class NoInputRows(LookupError):
    """The mart's inputs hold no rows it can be built from; the mart is skipped, its previous version kept."""


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def _differs_from_previous(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """True where a row's value differs from the previous row's (nulls compare equal to nulls); row 0 is True."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(array) == 0:
        return pa.array([], pa.bool_())
    current, previous = array.slice(1), array.slice(0, len(array) - 1)
    null_mismatch = pc.not_equal(pc.is_null(current), pc.is_null(previous))
    changed = pc.fill_null(pc.not_equal(current, previous), null_mismatch)
    return pa.concat_arrays([pa.array([True]), changed])


def first_per_group(sorted_table: pa.Table, keys: Iterable[str]) -> pa.Table:
    """The first row of each run of equal keys in a table already sorted by those keys."""
    keys = list(keys)
    if sorted_table.num_rows == 0:
        return sorted_table
    mask = _differs_from_previous(sorted_table[keys[0]])
    for key in keys[1:]:
        mask = pc.or_(mask, _differs_from_previous(sorted_table[key]))
    return sorted_table.filter(mask)


def latest_rows(table: pa.Table, keys: Iterable[str], newest: str = "_ingested_at") -> pa.Table:
    """One row per natural key, the newest ingestion winning (the staging contract's rule, applied defensively)."""
    keys = list(keys)
    if newest not in table.column_names:
        return first_per_group(table.sort_by([(k, "ascending") for k in keys]), keys)
    ordered = table.sort_by([*((k, "ascending") for k in keys), (newest, "descending")])
    return first_per_group(ordered, keys)


def time_key(year: pa.Array | pa.ChunkedArray, period: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """The dim_time key of a (year, period) pair, e.g. ``2025-Q01``."""
    return pc.binary_join_element_wise(pc.cast(year, pa.string()), period, "-")


def _exact_micros(values: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.cast(pc.round(pc.multiply(values, float(MICRO))), pa.int64())


def _from_micros(micros: pa.ChunkedArray | pa.Array) -> pa.Array:
    # int64 -> float64 is exact below 2**53 and IEEE division is correctly rounded: the nearest double to the sum.
    return pc.divide(pc.cast(micros, pa.float64()), float(MICRO))


def _empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def _strings(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        return pa.chunked_array([pa.nulls(table.num_rows, pa.string())])
    column = table[name]
    if pa.types.is_string(column.type):
        return column
    return pc.cast(column, pa.string())


def _int32(table: pa.Table, name: str) -> pa.ChunkedArray:
    """An integer column from whatever the staging wrote (int or text such as "1988" or "-")."""
    if name not in table.column_names:
        return pa.chunked_array([pa.nulls(table.num_rows, pa.int32())])
    column = table[name]
    if pa.types.is_integer(column.type):
        return pc.cast(column, pa.int32())
    text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    numeric = pc.match_substring_regex(text, r"^-?[0-9]+$")
    return pc.cast(pc.if_else(numeric, text, pa.scalar(None, pa.string())), pa.int32())


# ----------------------------------------------------------------------------------------------------------------
# Input selections (applied before a mart is built; they also bound the lineage to the rows actually used)
# ----------------------------------------------------------------------------------------------------------------


def current_bulk_file(observations: pa.Table, survey: str = "pr") -> pa.Table:
    """The rows of the bulk ``{survey}.data.0.Current`` file (the Data Quest's input), nothing else."""
    mask = pc.and_(
        pc.equal(_strings(observations, "source_kind"), "bulk"),
        pc.equal(_strings(observations, "source_file"), f"{survey}.data{CURRENT_FILE_SUFFIX}"),
    )
    return observations.filter(pc.fill_null(mask, False))


def preferred_population(population: pa.Table) -> pa.Table:
    """The US (nation) population of one vintage, one row per year (see the module docstring for the rule)."""
    nation = population.filter(pc.fill_null(pc.equal(_strings(population, "geography_id"), NATION_GEOGRAPHY_ID), False))
    nation = nation.filter(pc.is_valid(nation["population"]))
    if nation.num_rows == 0:
        return nation
    present = set(pc.unique(_strings(nation, "vintage")).to_pylist())
    ranked = [v for v in POPULATION_VINTAGE_PREFERENCE if v in present]
    ranked += sorted(v for v in present if v is not None and v not in POPULATION_VINTAGE_PREFERENCE)
    chosen = ranked[0] if ranked else None
    if chosen is None:
        selected = nation.filter(pc.is_null(_strings(nation, "vintage")))
    else:
        selected = nation.filter(pc.fill_null(pc.equal(_strings(nation, "vintage"), chosen), False))
    return latest_rows(selected, ["geography_id", "year"])


POPULATION_YEARLY_SCHEMA = pa.schema(
    [
        ("geography_id", pa.string()),
        ("geography", pa.string()),
        ("vintage", pa.string()),
        ("year", pa.int32()),
        ("population", pa.int64()),
        ("is_preferred_vintage", pa.bool_()),
    ]
)


def population_yearly(population: pa.Table) -> pa.Table:
    """US population per year for every staged vintage, flagging the vintage the reports use.

    Raises
    ------
    NoInputRows
        When no US population is staged.
    """
    nation = population.filter(pc.fill_null(pc.equal(_strings(population, "geography_id"), NATION_GEOGRAPHY_ID), False))
    if nation.num_rows == 0:
        raise NoInputRows("no US population staged")
    latest = latest_rows(nation, ["geography_id", "vintage", "year"])
    preferred = preferred_population(population)
    chosen = preferred["vintage"][0].as_py() if preferred.num_rows else None
    vintage = _strings(latest, "vintage")
    return pa.table(
        {
            "geography_id": _strings(latest, "geography_id"),
            "geography": _strings(latest, "geography"),
            "vintage": vintage,
            "year": pc.cast(latest["year"], pa.int32()),
            "population": pc.cast(latest["population"], pa.int64()),
            "is_preferred_vintage": pc.fill_null(pc.equal(vintage, chosen), False),
        },
        schema=POPULATION_YEARLY_SCHEMA,
    )


# ----------------------------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------------------------

POPULATION_STATS_SCHEMA = pa.schema(
    [
        ("geography_id", pa.string()),
        ("geography", pa.string()),
        ("vintage", pa.string()),
        ("year_from", pa.int32()),
        ("year_to", pa.int32()),
        ("years_expected", pa.int32()),
        ("years_present", pa.int32()),
        ("years", pa.string()),
        ("mean_population", pa.float64()),
        ("std_population_ddof0", pa.float64()),
        ("std_sample_ddof1", pa.float64()),
    ]
)


def population_stats(population: pa.Table, year_from: int = 2013, year_to: int = 2018) -> pa.Table:
    """Mean, population (ddof=0) and sample (ddof=1) standard deviation of annual US population, inclusive years.

    Parameters
    ----------
    population: the preferred-vintage nation rows (``preferred_population``).

    Returns
    -------
    One row: the vintage used, the years asked for and present, and the three statistics (exact arithmetic,
    ``statistics`` module; the sample deviation is null with fewer than two years).

    Raises
    ------
    NoInputRows
        When no year of the window is present.
    """
    years = pc.cast(population["year"], pa.int32())
    window = population.filter(pc.and_(pc.greater_equal(years, year_from), pc.less_equal(years, year_to)))
    rows = sorted(
        zip(window["year"].to_pylist(), window["population"].to_pylist(), strict=True), key=lambda pair: pair[0]
    )
    if not rows:
        raise NoInputRows(f"no US population for {year_from}-{year_to}")
    values = [int(p) for _, p in rows]
    first = window.slice(0, 1).to_pylist()[0]
    return pa.Table.from_pylist(
        [
            {
                "geography_id": first.get("geography_id"),
                "geography": first.get("geography"),
                "vintage": first.get("vintage"),
                "year_from": year_from,
                "year_to": year_to,
                "years_expected": year_to - year_from + 1,
                "years_present": len(values),
                "years": ",".join(str(y) for y, _ in rows),
                "mean_population": float(statistics.mean(values)),
                "std_population_ddof0": float(statistics.pstdev(values)),
                "std_sample_ddof1": float(statistics.stdev(values)) if len(values) > 1 else None,
            }
        ],
        schema=POPULATION_STATS_SCHEMA,
    )


BEST_YEAR_SCHEMA = pa.schema([("series_id", pa.string()), ("year", pa.int32()), ("value", pa.float64())])


def bls_best_year(observations: pa.Table) -> pa.Table:
    """Per series, the year with the largest summed quarterly value (Q05 for annual-only series; earliest on a tie).

    Parameters
    ----------
    observations: the rows of one bulk file (``current_bulk_file``): series_id, year, period, value.

    Returns
    -------
    series_id, year, value: exactly one row per series in the input. A series whose every value is null keeps
    its row, with a null year and value.

    Raises
    ------
    NoInputRows
        When the input is empty.
    """
    if observations.num_rows == 0:
        raise NoInputRows("no rows of the bulk Current file are staged")
    # One row per observation even if a merge left two versions of a row visible for a moment: never sum both.
    obs = latest_rows(observations, ["series_id", "year", "period"]).select(["series_id", "year", "period", "value"])
    is_quarter = pc.is_in(obs["period"], value_set=pa.array(QUARTERS))
    obs = obs.append_column("is_quarter", is_quarter)
    has_quarters = obs.group_by(["series_id"], use_threads=False).aggregate([("is_quarter", "any")])
    obs = obs.join(has_quarters, keys="series_id", join_type="left outer", use_threads=False)
    use = pc.if_else(obs["is_quarter_any"], obs["is_quarter"], pc.equal(obs["period"], "Q05"))
    used = obs.filter(pc.and_(use, pc.is_valid(obs["value"])))
    used = used.append_column("micros", _exact_micros(used["value"]))
    totals = used.group_by(["series_id", "year"], use_threads=False).aggregate([("micros", "sum")])
    ordered = totals.sort_by([("series_id", "ascending"), ("micros_sum", "descending"), ("year", "ascending")])
    best = first_per_group(ordered, ["series_id"])
    best = pa.table(
        {
            "series_id": best["series_id"],
            "year": pc.cast(best["year"], pa.int32()),
            "value": _from_micros(best["micros_sum"]),
        }
    )
    every_series = pa.table({"series_id": pc.unique(obs["series_id"])})
    result = every_series.join(best, keys="series_id", join_type="left outer", use_threads=False)
    return result.select(BEST_YEAR_SCHEMA.names).cast(BEST_YEAR_SCHEMA).sort_by("series_id")


SERIES_POPULATION_SCHEMA = pa.schema(
    [
        ("series_id", pa.string()),
        ("year", pa.int32()),
        ("period", pa.string()),
        ("value", pa.float64()),
        ("population", pa.int64()),
        ("population_vintage", pa.string()),
    ]
)


def series_population(
    observations: pa.Table, population: pa.Table, series_id: str = "PRS30006032", period: str = "Q01"
) -> pa.Table:
    """Every year's value of one series and period, with that year's US population (null where none; kept).

    Raises
    ------
    NoInputRows
        When the series and period have no rows.
    """
    mask = pc.and_(pc.equal(observations["series_id"], series_id), pc.equal(observations["period"], period))
    picked = latest_rows(observations.filter(pc.fill_null(mask, False)), ["series_id", "year", "period"])
    if picked.num_rows == 0:
        raise NoInputRows(f"{series_id} {period} is not staged")
    left = pa.table(
        {
            "series_id": picked["series_id"],
            "year": pc.cast(picked["year"], pa.int32()),
            "period": picked["period"],
            "value": pc.cast(picked["value"], pa.float64()),
        }
    )
    right = pa.table(
        {
            "year": pc.cast(population["year"], pa.int32()),
            "population": pc.cast(population["population"], pa.int64()),
            "population_vintage": _strings(population, "vintage"),
        }
    )
    joined = left.join(right, keys="year", join_type="left outer", use_threads=False)
    return joined.select(SERIES_POPULATION_SCHEMA.names).cast(SERIES_POPULATION_SCHEMA).sort_by("year")


CORRELATION_SCHEMA = pa.schema(
    [
        ("series_id", pa.string()),
        ("n_years", pa.int32()),
        ("first_year", pa.int32()),
        ("last_year", pa.int32()),
        ("pearson_r", pa.float64()),
        ("r_squared", pa.float64()),
        ("population_vintage", pa.string()),
    ]
)
MIN_CORRELATION_YEARS = 3


def bls_population_correlation(
    yearly: pa.Table, population: pa.Table, with_annual_values: Iterable[str] | None = None
) -> pa.Table:
    """Pearson correlation of each series' annual value with US population, over the years both have.

    Parameters
    ----------
    yearly: ``agg_bls_series_yearly`` (series_id, year, annual_value), or only its rows of the population's years.
    population: the preferred-vintage nation rows.
    with_annual_values: every series with an annual value in any year (when ``yearly`` holds only the population's
        years); None: the series of ``yearly``.

    Returns
    -------
    One row per series with any annual value. ``pearson_r`` is null with fewer than three common years or a
    constant series (the correlation is undefined), and the row is kept so the gap is visible.

    Raises
    ------
    NoInputRows
        When there is no population or no annual value.
    """
    if population.num_rows == 0:
        raise NoInputRows("no US population staged")
    pop_by_year = dict(zip(population["year"].to_pylist(), population["population"].to_pylist(), strict=True))
    vintage = population["vintage"][0].as_py() if "vintage" in population.column_names else None
    annual = yearly.filter(pc.is_valid(yearly["annual_value"])).sort_by(
        [("series_id", "ascending"), ("year", "ascending")]
    )
    listed = sorted(set(with_annual_values)) if with_annual_values is not None else None
    if annual.num_rows == 0 and not listed:
        raise NoInputRows("no annual values to correlate")
    pairs: dict[str, list[tuple[int, float, int]]] = {sid: [] for sid in listed or ()}
    for sid, year, value in zip(
        annual["series_id"].to_pylist(), annual["year"].to_pylist(), annual["annual_value"].to_pylist(), strict=True
    ):
        pairs.setdefault(sid, [])
        if pop_by_year.get(year) is not None:
            pairs[sid].append((year, value, pop_by_year[year]))
    rows = []
    for sid, points in pairs.items():
        r = None
        if len(points) >= MIN_CORRELATION_YEARS:
            xs, ys = [p[1] for p in points], [float(p[2]) for p in points]
            try:
                r = max(-1.0, min(1.0, statistics.correlation(xs, ys)))  # bounded; no ulp beyond +-1
            except statistics.StatisticsError:  # a constant input: the correlation is undefined
                r = None
        rows.append(
            {
                "series_id": sid,
                "n_years": len(points),
                "first_year": points[0][0] if points else None,
                "last_year": points[-1][0] if points else None,
                "pearson_r": r,
                "r_squared": None if r is None else r * r,
                "population_vintage": vintage,
            }
        )
    return pa.Table.from_pylist(rows, schema=CORRELATION_SCHEMA)


# ----------------------------------------------------------------------------------------------------------------
# BLS facts, dimensions and aggregates
# ----------------------------------------------------------------------------------------------------------------

FACT_BLS_SCHEMA = pa.schema(
    [
        ("series_id", pa.string()),
        ("survey", pa.string()),
        ("year", pa.int32()),
        ("period", pa.string()),
        ("time_key", pa.string()),
        ("value", pa.float64()),
        ("footnote_codes", pa.string()),
        ("source_kind", pa.string()),
        ("source_file", pa.string()),
    ]
)


# The staging columns the fact reads (its partitions are built from these, spooled by survey and year).
FACT_INPUT_SCHEMA = pa.schema(
    [
        ("series_id", pa.string()),
        ("survey", pa.string()),
        ("year", pa.int32()),
        ("period", pa.string()),
        ("value", pa.float64()),
        ("footnote_codes", pa.string()),
        ("source_kind", pa.string()),
        ("source_file", pa.string()),
        ("_ingested_at", pa.timestamp("us", tz="UTC")),
        ("_source", pa.string()),
        ("_run_id", pa.string()),
    ]
)


def pieces_of(table: Any, columns: list[str]) -> Iterable[pa.Table]:
    """A table, or the partitions of a partitioned mart (anything with ``scan(columns)``), one table at a time."""
    scan = getattr(table, "scan", None)
    return scan(columns) if scan is not None else [table]


def fact_bls_observation(observations: pa.Table) -> pa.Table:
    """One row per (series_id, year, period) across the API and the bulk files.

    Where several sources hold the same observation, the bulk ``*.data.0.Current`` file wins (BLS's current
    release of the survey), then the API, then the other bulk files (``*.1.AllData`` adds older history); within
    one source the newest ingestion wins.

    Raises
    ------
    NoInputRows
        When nothing is staged.
    """
    if observations.num_rows == 0:
        raise NoInputRows("no BLS observations staged")
    source_kind = _strings(observations, "source_kind")
    source_file = _strings(observations, "source_file")
    is_current = pc.fill_null(pc.ends_with(source_file, CURRENT_FILE_SUFFIX), False)
    is_api = pc.fill_null(pc.equal(source_kind, "api"), False)
    rank = pc.if_else(is_current, 0, pc.if_else(is_api, 1, 2))
    survey = _strings(observations, "survey")
    survey = pc.coalesce(survey, pc.utf8_lower(pc.utf8_slice_codeunits(observations["series_id"], 0, 2)))
    table = pa.table(
        {
            "series_id": observations["series_id"],
            "survey": survey,
            "year": pc.cast(observations["year"], pa.int32()),
            "period": observations["period"],
            "value": pc.cast(observations["value"], pa.float64()),
            "footnote_codes": _strings(observations, "footnote_codes"),
            "source_kind": source_kind,
            "source_file": source_file,
            "_rank": rank,
            "_ingested_at": observations["_ingested_at"]
            if "_ingested_at" in observations.column_names
            else pa.nulls(observations.num_rows, pa.timestamp("us", "UTC")),
        }
    )
    ordered = table.sort_by(
        [
            ("series_id", "ascending"),
            ("year", "ascending"),
            ("period", "ascending"),
            ("_rank", "ascending"),
            ("_ingested_at", "descending"),
        ]
    )
    best = first_per_group(ordered, ["series_id", "year", "period"])
    best = best.append_column("time_key", time_key(best["year"], best["period"]))
    return best.select(FACT_BLS_SCHEMA.names).cast(FACT_BLS_SCHEMA)


DIM_SERIES_SCHEMA = pa.schema(
    [
        ("series_id", pa.string()),
        ("survey", pa.string()),
        ("series_title", pa.string()),
        ("seasonal", pa.string()),
        ("base_year", pa.string()),
        ("sector_code", pa.string()),
        ("sector_name", pa.string()),
        ("class_code", pa.string()),
        ("class_text", pa.string()),
        ("measure_code", pa.string()),
        ("measure_text", pa.string()),
        ("duration_code", pa.string()),
        ("duration_text", pa.string()),
        ("begin_year", pa.int32()),
        ("begin_period", pa.string()),
        ("end_year", pa.int32()),
        ("end_period", pa.string()),
        ("observations", pa.int64()),
        ("first_year", pa.int32()),
        ("last_year", pa.int32()),
        ("sources", pa.string()),
    ]
)
_SERIES_TEXT_COLUMNS = (
    "series_title",
    "seasonal",
    "base_year",
    "sector_code",
    "sector_name",
    "class_code",
    "class_text",
    "measure_code",
    "measure_text",
    "duration_code",
    "duration_text",
    "begin_period",
    "end_period",
)


def _seasonal_code(value: str | None) -> str | None:
    """S or U, whether the source says "S" (pr.series) or "Seasonally Adjusted" (the API catalog)."""
    if value is None:
        return None
    text = value.strip().lower()
    if text.startswith(("not", "u")):
        return "U"
    if text.startswith("s"):
        return "S"
    return value


def _composed_title(row: dict) -> str | None:
    """A readable title for a pr series, whose mapping files have no title: sector, measure, duration, class."""
    parts = [row.get("sector_name"), row.get("measure_text")]
    title = ": ".join(p for p in parts if p)
    if row.get("duration_text"):
        title += f", {row['duration_text']}"
    if row.get("class_text"):
        title += f" ({row['class_text']})"
    return title or None


def _series_metadata(series: pa.Table) -> dict[str, dict]:
    """One metadata record per series. A series described twice (the bulk mapping files and the API catalog) takes
    each field from the bulk record first, then the API's (e.g. the catalog's title for a pr series); within one
    kind, the newest ingestion wins."""
    columns = {name: _strings(series, name).to_pylist() for name in _SERIES_TEXT_COLUMNS}
    begin, end = _int32(series, "begin_year").to_pylist(), _int32(series, "end_year").to_pylist()
    kinds, ids = _strings(series, "source_kind").to_pylist(), series["series_id"].to_pylist()
    ingested = series["_ingested_at"].to_pylist() if "_ingested_at" in series.column_names else [None] * series.num_rows
    order = sorted(
        range(series.num_rows),
        key=lambda i: (kinds[i] != "bulk", -(ingested[i].timestamp() if ingested[i] is not None else 0.0)),
    )
    merged: dict[str, dict] = {}
    for i in order:
        row = {name: values[i] for name, values in columns.items()}
        row.update(begin_year=begin[i], end_year=end[i], seasonal=_seasonal_code(row["seasonal"]))
        target = merged.setdefault(ids[i], {})
        for name, value in row.items():
            if target.get(name) is None and value is not None:
                target[name] = value
    return merged


def _series_stats(fact: Any) -> tuple[pa.Table, dict[str, set[str]]]:
    """Per series: observations, first and last year and survey; and its sources (API, bulk). Read one partition
    of the fact at a time when the fact is partitioned."""
    counts, kinds = [], []
    for piece in pieces_of(fact, ["series_id", "year", "source_kind", "survey"]):
        if not piece.num_rows:
            continue
        counts.append(
            piece.group_by(["series_id"], use_threads=False).aggregate(
                [([], "count_all"), ("year", "min"), ("year", "max"), ("survey", "min")]
            )
        )
        kinds.append(piece.group_by(["series_id", "source_kind"], use_threads=False).aggregate([]))
    if not counts:
        raise NoInputRows("fact_bls_observation is empty")
    stats = (
        pa.concat_tables(counts)
        .group_by(["series_id"], use_threads=False)
        .aggregate([("count_all", "sum"), ("year_min", "min"), ("year_max", "max"), ("survey_min", "min")])
    )
    sources: dict[str, set[str]] = {}
    for row in pa.concat_tables(kinds).to_pylist():
        if row["source_kind"]:
            sources.setdefault(row["series_id"], set()).add(row["source_kind"])
    return stats, sources


def dim_series(fact: Any, series: pa.Table | None, catalog_names: Mapping[str, str] | None = None) -> pa.Table:
    """Every series with observations, with its codes and titles from the mapping files or the API catalog.

    ``fact``: the fact table, or the partitioned fact (read one partition at a time). A series without a title
    there takes a title composed from its decoded codes (pr), else its name in the pipeline's catalog
    (``catalog_names``). A series without metadata keeps its row (nulls), so the dimension covers every fact row.
    """
    catalog_names = catalog_names or {}
    stats, sources = _series_stats(fact)
    meta_rows = _series_metadata(series) if series is not None and series.num_rows else {}
    rows = []
    for stat in stats.to_pylist():
        meta = meta_rows.get(stat["series_id"], {})
        title = meta.get("series_title") or _composed_title(meta) or catalog_names.get(stat["series_id"])
        rows.append(
            {
                **{name: meta.get(name) for name in DIM_SERIES_SCHEMA.names if name in meta},
                "series_id": stat["series_id"],
                "survey": stat["survey_min_min"],
                "series_title": title,
                "observations": stat["count_all_sum"],
                "first_year": stat["year_min_min"],
                "last_year": stat["year_max_max"],
                "sources": ",".join(sorted(sources.get(stat["series_id"], ()))),
            }
        )
    return pa.Table.from_pylist(rows, schema=DIM_SERIES_SCHEMA).sort_by("series_id")


DIM_TIME_SCHEMA = pa.schema(
    [
        ("time_key", pa.string()),
        ("year", pa.int32()),
        ("period", pa.string()),
        ("period_type", pa.string()),
        ("period_number", pa.int32()),
        ("is_annual_average", pa.bool_()),
        ("quarter", pa.int32()),
        ("month", pa.int32()),
        ("start_date", pa.date32()),
        ("end_date", pa.date32()),
    ]
)


def _period_row(year: int, period: str) -> dict:
    number = int(period[1:])
    row = {
        "time_key": f"{year}-{period}",
        "year": year,
        "period": period,
        "period_number": number,
        "is_annual_average": period in ANNUAL_PERIODS,
        "quarter": None,
        "month": None,
        "start_date": date(year, 1, 1),
        "end_date": date(year, 12, 31),
    }
    if period.startswith("M") and number <= 12:
        next_month = date(year + 1, 1, 1) if number == 12 else date(year, number + 1, 1)
        row.update(
            period_type="month",
            month=number,
            quarter=(number - 1) // 3 + 1,
            start_date=date(year, number, 1),
            end_date=date.fromordinal(next_month.toordinal() - 1),
        )
    elif period.startswith("Q") and number <= 4:
        first_month = 3 * (number - 1) + 1
        next_start = date(year + 1, 1, 1) if number == 4 else date(year, first_month + 3, 1)
        row.update(
            period_type="quarter",
            quarter=number,
            start_date=date(year, first_month, 1),
            end_date=date.fromordinal(next_start.toordinal() - 1),
        )
    else:
        row["period_type"] = "annual"
    return row


def dim_time(fact: Any, population: pa.Table | None) -> pa.Table:
    """Every BLS period (M01-M13, Q01-Q05, A01) of every year from the earliest to the latest year in the data.

    ``fact``: the fact table, or the partitioned fact (whose years are its partitions: nothing is read)."""
    listed = getattr(fact, "years", None)
    years = list(listed()) if listed is not None else [y for y in fact["year"].to_pylist() if y is not None]
    if population is not None and population.num_rows:
        years += [y for y in population["year"].to_pylist() if y is not None]
    if not years:
        raise NoInputRows("no years in the facts")
    rows = [_period_row(year, period) for year in range(min(years), max(years) + 1) for period in ALL_PERIODS]
    return pa.Table.from_pylist(rows, schema=DIM_TIME_SCHEMA)


YEARLY_SCHEMA = pa.schema(
    [
        ("series_id", pa.string()),
        ("year", pa.int32()),
        ("period_type", pa.string()),
        ("observations", pa.int64()),
        ("value_sum", pa.float64()),
        ("value_mean", pa.float64()),
        ("value_min", pa.float64()),
        ("value_max", pa.float64()),
        ("annual_average", pa.float64()),
        ("annual_value", pa.float64()),
    ]
)


def agg_bls_series_yearly(fact: pa.Table) -> pa.Table:
    """Per series and year: count, sum, mean, min and max of the sub-annual values, the published annual average
    (Q05, M13 or A01) and ``annual_value``: that average, or the mean of a complete year (4 quarters, 12 months)."""
    if fact.num_rows == 0:
        raise NoInputRows("fact_bls_observation is empty")
    valid = fact.filter(pc.is_valid(fact["value"]))
    is_annual = pc.is_in(valid["period"], value_set=pa.array(ANNUAL_PERIODS))
    sub = valid.filter(pc.invert(is_annual))
    sub = sub.append_column("kind", pc.utf8_slice_codeunits(sub["period"], 0, 1))
    stats = sub.group_by(["series_id", "year"], use_threads=False).aggregate(
        [
            ([], "count_all"),
            ("value", "sum"),
            ("value", "mean"),
            ("value", "min"),
            ("value", "max"),
            ("kind", "min"),
        ]
    )
    annual = valid.filter(is_annual).group_by(["series_id", "year"], use_threads=False).aggregate([("value", "max")])
    annual = annual.rename_columns(["series_id", "year", "annual_average"])
    joined = stats.join(annual, keys=["series_id", "year"], join_type="full outer", use_threads=False)
    kind = joined["kind_min"]
    period_type = pc.if_else(
        pc.equal(kind, "Q"), "quarter", pc.if_else(pc.equal(kind, "M"), "month", pa.scalar(None, pa.string()))
    )
    period_type = pc.fill_null(period_type, "annual")
    count = pc.fill_null(joined["count_all"], 0)
    complete = pc.or_(
        pc.and_(pc.equal(period_type, "quarter"), pc.equal(count, 4)),
        pc.and_(pc.equal(period_type, "month"), pc.equal(count, 12)),
    )
    mean_if_complete = pc.if_else(complete, joined["value_mean"], pa.scalar(None, pa.float64()))
    result = pa.table(
        {
            "series_id": joined["series_id"],
            "year": pc.cast(joined["year"], pa.int32()),
            "period_type": period_type,
            "observations": count,
            "value_sum": joined["value_sum"],
            "value_mean": joined["value_mean"],
            "value_min": joined["value_min"],
            "value_max": joined["value_max"],
            "annual_average": joined["annual_average"],
            "annual_value": pc.coalesce(joined["annual_average"], mean_if_complete),
        }
    )
    return result.cast(YEARLY_SCHEMA).sort_by([("series_id", "ascending"), ("year", "ascending")])
