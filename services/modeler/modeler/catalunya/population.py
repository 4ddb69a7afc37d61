"""Population of Catalunya by year, municipality, sex and age band (``b4rr-d25b``), on the territory dimension.

The source has one row per year and municipality, with a column per sex and age band (``Homes. De 0 a 14 anys``
-> ``homes_de_0_a_14_anys``) and totals (``Total. ...``). The fact keeps men and women (summing them gives the
totals; keeping the totals too would count everyone twice) and checks the source's totals against that sum: a row
whose totals disagree, whose code does not name a municipality, or whose year and municipality appear twice is
rejected with the reason.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from modeler.catalunya.territory import Territory, current_snapshot, rejected_of, resolve_codes
from modeler.spec import Built, NoInputRows

POPULATION_DATASET = "b4rr-d25b"
POPULATION_TABLE = "socrata_b4rr_d25b"
SEXES = {"homes": "male", "dones": "female"}
ELDERLY_BAND = "65+"

_BAND_COLUMN = re.compile(r"^(?P<sex>homes|dones|total)_de_(?P<low>[0-9]+)_(?:a_(?P<high>[0-9]+)_anys|anys_i_m_s)$")

FACT_POPULATION_SCHEMA = pa.schema(
    [
        ("year", pa.int32()),
        ("municipality_code", pa.string()),
        ("sex", pa.string()),  # male, female
        ("age_band", pa.string()),  # 0-14, 15-64, 65+
        ("population", pa.int64()),
    ]
)


def band_columns(columns: list[str]) -> dict[str, dict[str, str]]:
    """``{age band: {homes|dones|total: column}}`` from the staging column names."""
    bands: dict[str, dict[str, str]] = {}
    for column in columns:
        match = _BAND_COLUMN.match(column)
        if match:
            band = f"{match['low']}-{match['high']}" if match["high"] else f"{match['low']}+"
            bands.setdefault(band, {})[match["sex"]] = column
    return bands


def _count(value: Any) -> int | None:
    if isinstance(value, int | float) and float(value).is_integer() and value >= 0:
        return int(value)
    return None


def _year(value: Any) -> int | None:
    count = _count(value)
    return count if count is not None and 1900 <= count <= 2100 else None


def fact_population(population: pa.Table, municipalities: pa.Table) -> Built:
    """One row per year, municipality, sex (male, female) and age band.

    Raises
    ------
    NoInputRows
        When the population table is empty or has no column per sex and age band.
    """
    table = current_snapshot(population)
    if table.num_rows == 0:
        raise NoInputRows("the population table (b4rr-d25b) is empty")
    bands = {b: c for b, c in band_columns(table.column_names).items() if set(SEXES) <= set(c)}
    if not bands:
        raise NoInputRows("the population table has no column per sex and age band")
    codes = table["codi"].to_pylist() if "codi" in table.column_names else [None] * table.num_rows
    names = table["literal"].to_pylist() if "literal" in table.column_names else None
    resolutions = resolve_codes(Territory(municipalities), codes, 6, names)
    values = {column: table[column].to_pylist() for band in bands.values() for column in band.values()}
    years = [_year(v) for v in (table["any"].to_pylist() if "any" in table.column_names else [None] * table.num_rows)]
    problems: dict[int, str] = {}
    seen: dict[tuple[int | None, str | None], list[int]] = {}
    for i, resolution in enumerate(resolutions):
        if resolution.code is not None:
            seen.setdefault((years[i], resolution.code), []).append(i)
    for i in range(table.num_rows):
        problem = None
        if years[i] is None:
            problem = "the year is missing or not a year"
        elif len(seen.get((years[i], resolutions[i].code), [i])) > 1:
            problem = f"year {years[i]} of municipality {resolutions[i].code} appears more than once"
        for band, columns in bands.items():
            if problem is not None:
                break
            counts = {sex: _count(values[column][i]) for sex, column in columns.items()}
            if counts["homes"] is None or counts["dones"] is None:
                problem = f"the {band} count of men or women is missing or not a count"
            elif counts.get("total") is not None and counts["total"] != counts["homes"] + counts["dones"]:
                problem = f"the {band} total {counts['total']} is not men {counts['homes']} + women {counts['dones']}"
        if problem is not None:
            problems[i] = problem
    examples = [f"{codes[i]!r} {names[i] if names else ''} {years[i]}".strip() for i in range(table.num_rows)]
    keep, rejected = rejected_of(POPULATION_DATASET, table, resolutions, examples, problems)
    rows = [
        {
            "year": years[i],
            "municipality_code": resolutions[i].code,
            "sex": sex,
            "age_band": band,
            "population": _count(values[columns[source]][i]),
        }
        for i in keep
        for band, columns in sorted(bands.items())
        for source, sex in SEXES.items()
    ]
    fact = pa.Table.from_pylist(rows, schema=FACT_POPULATION_SCHEMA)
    return Built(fact, (rejected,))


def population_by_municipality(fact: pa.Table, year: int) -> dict[str, dict[str, int]]:
    """``{municipality: {"total": residents, "65+": residents aged 65 and over}}`` in one year."""
    totals: dict[str, dict[str, int]] = {}
    for row in fact.to_pylist():
        if row["year"] != year:
            continue
        entry = totals.setdefault(row["municipality_code"], {"total": 0, ELDERLY_BAND: 0})
        entry["total"] += row["population"]
        if row["age_band"] == ELDERLY_BAND:
            entry[ELDERLY_BAND] += row["population"]
    return totals
