"""The reports that answer the questions asked of the BLS and population data: the best year of each series, one
series beside the population, and each series' correlation with the population.

Pure: pyarrow only. The best year of a series is the year with the largest sum of Q01-Q04; a series published
annually only (no quarterly row at all) uses Q05; ties go to the earliest year; every series of the file keeps a
row. Sums are exact: values are summed as integers in millionths (BLS prints at most three decimals), so a tie is a
tie and not a floating-point accident; the reported value is that exact sum as the nearest double.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from modeler.domain.arrow_helpers import exact_micros, first_per_group, from_micros, latest_rows, text_column
from modeler.domain.bls_marts import QUARTERS
from modeler.spec import NoInputRows

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
    used = used.append_column("micros", exact_micros(used["value"]))
    totals = used.group_by(["series_id", "year"], use_threads=False).aggregate([("micros", "sum")])
    ordered = totals.sort_by([("series_id", "ascending"), ("micros_sum", "descending"), ("year", "ascending")])
    best = first_per_group(ordered, ["series_id"])
    best = pa.table(
        {
            "series_id": best["series_id"],
            "year": pc.cast(best["year"], pa.int32()),
            "value": from_micros(best["micros_sum"]),
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
            "population_vintage": text_column(population, "vintage"),
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
