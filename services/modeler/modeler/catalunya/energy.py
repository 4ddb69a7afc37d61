"""Electricity consumption of Catalunya by year, municipality and economic sector (``8idm-becu``).

The source names a municipality by its 5-digit INE code (``08001``) and an upper-case name (``ABRERA``): the code
resolves it (the names are only compared, and some are former names or garbled, e.g. ``ESQUIROL, Lâ€™``). A figure
under statistical secrecy is published empty: it stays null (never 0) and is flagged, so a sum over a comarca is a
lower bound and says how many municipalities it lacks. Per resident figures divide by the same year's population
only; a year without population data (the population table covers 2019-2020) has none.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from modeler.catalunya.population import population_by_municipality
from modeler.catalunya.territory import Territory, current_snapshot, name_key, rejected_of, resolve_codes
from modeler.spec import Built, NoInputRows

ENERGY_DATASET = "8idm-becu"
ENERGY_TABLE = "socrata_8idm_becu"

# The sectors the source publishes, by code, in English. A code not listed fails dim_economic_sector's checks.
SECTOR_LABELS = {
    1: "Primary (agriculture, livestock, fishing)",
    3: "Industry",
    4: "Construction and public works",
    5: "Transport",
    6: "Services",
    7: "Households (domestic use)",
}
HOUSEHOLDS = 7
_SECRECY = "secret estadistic"
_ENERGY_SECTOR = "sector energetic"

FACT_ENERGY_SCHEMA = pa.schema(
    [
        ("year", pa.int32()),
        ("municipality_code", pa.string()),
        ("sector_code", pa.int32()),
        ("consumption_kwh", pa.int64()),  # null under statistical secrecy
        ("is_confidential", pa.bool_()),
        ("includes_energy_sector", pa.bool_()),  # the figure includes the energy sector's own consumption
        ("observations", pa.string()),
    ]
)

DIM_SECTOR_SCHEMA = pa.schema(
    [
        ("sector_code", pa.int32()),
        ("sector_name", pa.string()),  # as published: PRIMARI, INDUSTRIAL, ...
        ("sector_label", pa.string()),
        ("is_households", pa.bool_()),
    ]
)


def _whole(value: Any) -> int | None:
    if isinstance(value, int | float) and float(value).is_integer():
        return int(value)
    return None


def _list(table: pa.Table, name: str) -> list[Any]:
    return table[name].to_pylist() if name in table.column_names else [None] * table.num_rows


def fact_energy_consumption(energy: pa.Table, municipalities: pa.Table) -> Built:
    """One row per year, municipality and sector.

    A row whose code names no municipality, whose year or sector is missing, whose consumption is negative or
    missing without a secrecy note, or whose year, municipality and sector appear twice is rejected with the reason.

    Raises
    ------
    NoInputRows
        When the table is empty.
    """
    table = current_snapshot(energy)
    if table.num_rows == 0:
        raise NoInputRows("the electricity table (8idm-becu) is empty")
    codes, names = _list(table, "cdmun"), _list(table, "municipi")
    resolutions = resolve_codes(Territory(municipalities), codes, 5, names)
    years, sectors = [_whole(v) for v in _list(table, "any")], [_whole(v) for v in _list(table, "codi_sector")]
    consumption, notes = _list(table, "consum_kwh"), _list(table, "observacions")
    keys: dict[tuple[Any, ...], int] = {}
    for i, resolution in enumerate(resolutions):
        key = (years[i], resolution.code, sectors[i])
        keys[key] = keys.get(key, 0) + 1
    problems: dict[int, str] = {}
    for i, resolution in enumerate(resolutions):
        note = name_key(notes[i]) or ""
        kwh = consumption[i]
        if years[i] is None or sectors[i] is None:
            problems[i] = "the year or the sector code is missing"
        elif resolution.code is not None and keys[(years[i], resolution.code, sectors[i])] > 1:
            problems[i] = f"year {years[i]}, municipality {resolution.code}, sector {sectors[i]} appear more than once"
        elif kwh is None and _SECRECY not in note:
            problems[i] = "the consumption is missing and no secrecy note says why"
        elif kwh is not None and (_whole(kwh) is None or kwh < 0):
            problems[i] = f"consumption {kwh!r} is not a whole, non-negative number of kWh"
    examples = [f"{codes[i]!r} {names[i]} {years[i]} sector {sectors[i]}" for i in range(table.num_rows)]
    keep, rejected = rejected_of(ENERGY_DATASET, table, resolutions, examples, problems)
    rows = []
    for i in keep:
        note = name_key(notes[i]) or ""
        rows.append(
            {
                "year": years[i],
                "municipality_code": resolutions[i].code,
                "sector_code": sectors[i],
                "consumption_kwh": _whole(consumption[i]),
                "is_confidential": consumption[i] is None,
                "includes_energy_sector": _ENERGY_SECTOR in note,
                "observations": notes[i],
            }
        )
    return Built(pa.Table.from_pylist(rows, schema=FACT_ENERGY_SCHEMA), (rejected,))


def dim_economic_sector(energy: pa.Table) -> pa.Table:
    """The economic sectors of the electricity data: code, published name (the most common), English label.

    Raises
    ------
    NoInputRows
        When the table holds no sector.
    """
    names: dict[int, list[str]] = {}
    for code, name in zip(_list(energy, "codi_sector"), _list(energy, "descripcio_sector"), strict=True):
        sector = _whole(code)
        if sector is not None:
            names.setdefault(sector, []).append(" ".join(str(name).split()) if name else "")
    if not names:
        raise NoInputRows("the electricity table holds no sector")
    rows = [
        {
            "sector_code": code,
            "sector_name": min(set(spelt), key=lambda n: (-spelt.count(n), n)) or None,
            "sector_label": SECTOR_LABELS.get(code),
            "is_households": code == HOUSEHOLDS,
        }
        for code, spelt in names.items()
    ]
    return pa.Table.from_pylist(rows, schema=DIM_SECTOR_SCHEMA).sort_by("sector_code")


AGG_ENERGY_MUNICIPALITY_SCHEMA = pa.schema(
    [
        ("year", pa.int32()),
        ("municipality_code", pa.string()),
        ("comarca_code", pa.string()),
        ("consumption_kwh", pa.int64()),  # the published sectors' sum
        ("households_kwh", pa.int64()),
        ("sectors_published", pa.int64()),
        ("sectors_confidential", pa.int64()),
        ("population", pa.int64()),  # the same year's residents; null when that year has no population data
        ("kwh_per_resident", pa.float64()),
        ("households_kwh_per_resident", pa.float64()),
    ]
)

AGG_ENERGY_COMARCA_SCHEMA = pa.schema(
    [
        ("year", pa.int32()),
        ("comarca_code", pa.string()),
        ("sector_code", pa.int32()),
        ("consumption_kwh", pa.int64()),  # the sum over the municipalities whose figure is published
        ("municipalities_published", pa.int64()),
        ("municipalities_confidential", pa.int64()),
        ("population", pa.int64()),  # the comarca's residents that year; null when that year has none
        ("kwh_per_resident", pa.float64()),
    ]
)


def _per(value: int | None, residents: int | None) -> float | None:
    return None if value is None or not residents else value / residents


def _populations(population: pa.Table | None, years: set[int]) -> dict[int, dict[str, dict[str, int]]]:
    if population is None or population.num_rows == 0:
        return {}
    present = set(population["year"].to_pylist())
    return {year: population_by_municipality(population, year) for year in years & present}


def _comarca_by_municipality(fact: pa.Table, municipalities: pa.Table) -> dict[str, str]:
    """Each municipality's comarca code, for an aggregate of a fact that must hold rows.

    Raises
    ------
    NoInputRows
        When the fact is empty.
    """
    if fact.num_rows == 0:
        raise NoInputRows("fact_energy_consumption is empty")
    return dict(
        zip(municipalities["municipality_code"].to_pylist(), municipalities["comarca_code"].to_pylist(), strict=True)
    )


def agg_energy_municipality_yearly(fact: pa.Table, municipalities: pa.Table, population: pa.Table | None) -> pa.Table:
    """Per year and municipality: the consumption of its published sectors, households apart, and per resident.

    Raises
    ------
    NoInputRows
        When the fact is empty.
    """
    comarca = _comarca_by_municipality(fact, municipalities)
    totals: dict[tuple[int, str], dict[str, Any]] = {}
    for row in fact.to_pylist():
        entry = totals.setdefault(
            (row["year"], row["municipality_code"]),
            {"kwh": None, "households": None, "published": 0, "confidential": 0},
        )
        if row["consumption_kwh"] is None:
            entry["confidential"] += 1
            continue
        entry["published"] += 1
        entry["kwh"] = (entry["kwh"] or 0) + row["consumption_kwh"]
        if row["sector_code"] == HOUSEHOLDS:
            entry["households"] = row["consumption_kwh"]
    residents = _populations(population, {year for year, _ in totals})
    rows = []
    for (year, code), entry in totals.items():
        people = residents.get(year, {}).get(code, {}).get("total")
        rows.append(
            {
                "year": year,
                "municipality_code": code,
                "comarca_code": comarca.get(code),
                "consumption_kwh": entry["kwh"],
                "households_kwh": entry["households"],
                "sectors_published": entry["published"],
                "sectors_confidential": entry["confidential"],
                "population": people,
                "kwh_per_resident": _per(entry["kwh"], people),
                "households_kwh_per_resident": _per(entry["households"], people),
            }
        )
    return pa.Table.from_pylist(rows, schema=AGG_ENERGY_MUNICIPALITY_SCHEMA)


def agg_energy_comarca_yearly(fact: pa.Table, municipalities: pa.Table, population: pa.Table | None) -> pa.Table:
    """Per year, comarca and sector: the published consumption, how many municipalities it covers and lacks, and
    per resident of the comarca.

    Raises
    ------
    NoInputRows
        When the fact is empty.
    """
    comarca = _comarca_by_municipality(fact, municipalities)
    totals: dict[tuple[int, str, int], dict[str, Any]] = {}
    for row in fact.to_pylist():
        entry = totals.setdefault(
            # a municipality the dimension lacks gets no comarca: the not-null check then holds the mart back
            (row["year"], comarca.get(row["municipality_code"]), row["sector_code"]),
            {"kwh": None, "published": 0, "confidential": 0},
        )
        if row["consumption_kwh"] is None:
            entry["confidential"] += 1
        else:
            entry["published"] += 1
            entry["kwh"] = (entry["kwh"] or 0) + row["consumption_kwh"]
    residents = _populations(population, {year for year, _, _ in totals})
    by_comarca: dict[int, dict[str, int]] = {}
    for year, people in residents.items():
        for code, counts in people.items():
            where = comarca.get(code)
            by_comarca.setdefault(year, {})[where] = by_comarca.setdefault(year, {}).get(where, 0) + counts["total"]
    rows = []
    for (year, comarca_code, sector), entry in totals.items():
        people = by_comarca.get(year, {}).get(comarca_code)
        rows.append(
            {
                "year": year,
                "comarca_code": comarca_code,
                "sector_code": sector,
                "consumption_kwh": entry["kwh"],
                "municipalities_published": entry["published"],
                "municipalities_confidential": entry["confidential"],
                "population": people,
                "kwh_per_resident": _per(entry["kwh"], people),
            }
        )
    return pa.Table.from_pylist(rows, schema=AGG_ENERGY_COMARCA_SCHEMA)
