"""The BLS marts: the observation fact across the API and the bulk files, the series and time dimensions, and the
yearly aggregate of each series.

Pure: pyarrow only. Per (series_id, year, period) the fact keeps one value: the bulk ``*.0.Current`` file wins, then
the API, then other bulk files; within a source, the newest ingestion.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from modeler.domain.arrow_helpers import (
    first_per_group,
    int32_column,
    text_column,
    time_key,
)
from modeler.spec import NoInputRows

QUARTERS = ("Q01", "Q02", "Q03", "Q04")
MONTHS = tuple(f"M{m:02d}" for m in range(1, 13))
ANNUAL_PERIODS = ("Q05", "M13", "A01")
ALL_PERIODS = (*MONTHS, "M13", *QUARTERS, "Q05", "A01")
PERIOD_TYPES = ("month", "quarter", "annual")
CURRENT_FILE_SUFFIX = ".0.Current"


def current_bulk_file(observations: pa.Table, survey: str = "pr") -> pa.Table:
    """The rows of the bulk ``{survey}.data.0.Current`` file (the Data Quest's input), nothing else."""
    mask = pc.and_(
        pc.equal(text_column(observations, "source_kind"), "bulk"),
        pc.equal(text_column(observations, "source_file"), f"{survey}.data{CURRENT_FILE_SUFFIX}"),
    )
    return observations.filter(pc.fill_null(mask, False))


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
    source_kind = text_column(observations, "source_kind")
    source_file = text_column(observations, "source_file")
    is_current = pc.fill_null(pc.ends_with(source_file, CURRENT_FILE_SUFFIX), False)
    is_api = pc.fill_null(pc.equal(source_kind, "api"), False)
    rank = pc.if_else(is_current, 0, pc.if_else(is_api, 1, 2))
    survey = text_column(observations, "survey")
    survey = pc.coalesce(survey, pc.utf8_lower(pc.utf8_slice_codeunits(observations["series_id"], 0, 2)))
    table = pa.table(
        {
            "series_id": observations["series_id"],
            "survey": survey,
            "year": pc.cast(observations["year"], pa.int32()),
            "period": observations["period"],
            "value": pc.cast(observations["value"], pa.float64()),
            "footnote_codes": text_column(observations, "footnote_codes"),
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
    columns = {name: text_column(series, name).to_pylist() for name in _SERIES_TEXT_COLUMNS}
    begin, end = int32_column(series, "begin_year").to_pylist(), int32_column(series, "end_year").to_pylist()
    kinds, ids = text_column(series, "source_kind").to_pylist(), series["series_id"].to_pylist()
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
