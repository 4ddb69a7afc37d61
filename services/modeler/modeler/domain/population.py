"""The US population marts: which vintage the reports use, the population per year, and its statistics.

Pure: pyarrow only. When several vintages are staged, everything uses one vintage for every year, chosen by
``POPULATION_VINTAGE_PREFERENCE``: the ACS 1-year estimate first (the survey's estimate *for* that year; a 5-year
estimate is a rolling average of five years), then the 5-year one, then any other alphabetically. A year the chosen
vintage lacks (2020 for the 1-year estimate) stays null: it is never filled from another vintage, so a series
never mixes definitions.
"""

from __future__ import annotations

import statistics

import pyarrow as pa
import pyarrow.compute as pc

from modeler.domain.arrow_helpers import latest_rows, text_column
from modeler.spec import NoInputRows

NATION_GEOGRAPHY_ID = "01000US"
POPULATION_VINTAGE_PREFERENCE = ("ACS 1-year Estimate", "ACS 5-year Estimate")


def preferred_population(population: pa.Table) -> pa.Table:
    """The US (nation) population of one vintage, one row per year (see the module docstring for the rule)."""
    nation = population.filter(
        pc.fill_null(pc.equal(text_column(population, "geography_id"), NATION_GEOGRAPHY_ID), False)
    )
    nation = nation.filter(pc.is_valid(nation["population"]))
    if nation.num_rows == 0:
        return nation
    present = set(pc.unique(text_column(nation, "vintage")).to_pylist())
    ranked = [v for v in POPULATION_VINTAGE_PREFERENCE if v in present]
    ranked += sorted(v for v in present if v is not None and v not in POPULATION_VINTAGE_PREFERENCE)
    chosen = ranked[0] if ranked else None
    if chosen is None:
        selected = nation.filter(pc.is_null(text_column(nation, "vintage")))
    else:
        selected = nation.filter(pc.fill_null(pc.equal(text_column(nation, "vintage"), chosen), False))
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
    nation = population.filter(
        pc.fill_null(pc.equal(text_column(population, "geography_id"), NATION_GEOGRAPHY_ID), False)
    )
    if nation.num_rows == 0:
        raise NoInputRows("no US population staged")
    latest = latest_rows(nation, ["geography_id", "vintage", "year"])
    preferred = preferred_population(population)
    chosen = preferred["vintage"][0].as_py() if preferred.num_rows else None
    vintage = text_column(latest, "vintage")
    return pa.table(
        {
            "geography_id": text_column(latest, "geography_id"),
            "geography": text_column(latest, "geography"),
            "vintage": vintage,
            "year": pc.cast(latest["year"], pa.int32()),
            "population": pc.cast(latest["population"], pa.int64()),
            "is_preferred_vintage": pc.fill_null(pc.equal(vintage, chosen), False),
        },
        schema=POPULATION_YEARLY_SCHEMA,
    )


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
