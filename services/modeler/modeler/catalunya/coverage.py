"""Coverage: social services and places per resident, by municipality and by comarca.

* Services and places per 1,000 residents: the register's current snapshot against the population.
* Elderly-care places per 1,000 residents aged 65 and over: the places of the services whose care area is
  ``elderly`` (residences, day centres, sheltered housing, rural care for older people, ...) against the residents
  aged 65+. This is the question the register is most often asked.
* The population year is the newest one at or before the register's snapshot year (the register of 2024 is set
  against the population of 2020, the newest the population table has), so a count is never divided by a
  population from after it was taken. When every population year is later than the snapshot, the earliest is used;
  the ``population_year`` column always says which.
* Every municipality of the dimension has a row (zero services where the register has none). A rate is null where
  the population is zero or unknown.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa

from modeler.catalunya.population import ELDERLY_BAND, population_by_municipality
from modeler.catalunya.services import ELDERLY
from modeler.spec import NoInputRows

_MEASURES = (
    ("population_year", pa.int32()),
    ("population", pa.int64()),
    ("population_65_plus", pa.int64()),
    ("services", pa.int64()),
    ("places", pa.int64()),
    ("elderly_services", pa.int64()),
    ("elderly_places", pa.int64()),
    ("services_per_1000", pa.float64()),
    ("places_per_1000", pa.float64()),
    ("elderly_places_per_1000_65_plus", pa.float64()),
)

AGG_COVERAGE_MUNICIPALITY_SCHEMA = pa.schema(
    [
        ("municipality_code", pa.string()),
        ("municipality_name", pa.string()),
        ("comarca_code", pa.string()),
        ("snapshot_date", pa.date32()),
        *_MEASURES,
    ]
)

AGG_COVERAGE_COMARCA_SCHEMA = pa.schema(
    [
        ("comarca_code", pa.string()),
        ("comarca_name", pa.string()),
        ("snapshot_date", pa.date32()),
        ("municipalities", pa.int64()),
        ("municipalities_with_elderly_places", pa.int64()),
        *_MEASURES,
    ]
)


def population_year(years: set[int], snapshot: date) -> int:
    """The newest population year at or before the snapshot's year; the earliest when all are later.

    Raises
    ------
    NoInputRows
        When there is no population year.
    """
    if not years:
        raise NoInputRows("fact_population is empty")
    earlier = [y for y in years if y <= snapshot.year]
    return max(earlier) if earlier else min(years)


def _per_thousand(count: int, residents: int | None) -> float | None:
    return None if not residents else 1000.0 * count / residents


def _measures(counts: dict[str, int], residents: dict[str, int], year: int) -> dict[str, Any]:
    return {
        "population_year": year,
        "population": residents.get("total"),
        "population_65_plus": residents.get(ELDERLY_BAND),
        **counts,
        "services_per_1000": _per_thousand(counts["services"], residents.get("total")),
        "places_per_1000": _per_thousand(counts["places"], residents.get("total")),
        "elderly_places_per_1000_65_plus": _per_thousand(counts["elderly_places"], residents.get(ELDERLY_BAND)),
    }


def _service_counts(services: pa.Table) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for row in services.select(["municipality_code", "care_area", "capacity"]).to_pylist():
        entry = counts.setdefault(
            row["municipality_code"], {"services": 0, "places": 0, "elderly_services": 0, "elderly_places": 0}
        )
        places = row["capacity"] or 0
        entry["services"] += 1
        entry["places"] += places
        if row["care_area"] == ELDERLY:
            entry["elderly_services"] += 1
            entry["elderly_places"] += places
    return counts


def _snapshot_date(services: pa.Table) -> date:
    dates = [d for d in services["snapshot_date"].to_pylist() if d is not None]
    if not dates:
        raise NoInputRows("fact_social_service has no snapshot date")
    return max(dates)


def agg_coverage_municipality(services: pa.Table, population: pa.Table, municipalities: pa.Table) -> pa.Table:
    """Per municipality: services, places and elderly-care places, absolute and per 1,000 residents (65+).

    Raises
    ------
    NoInputRows
        When there is no service or no population.
    """
    if services.num_rows == 0:
        raise NoInputRows("fact_social_service is empty")
    taken = _snapshot_date(services)
    year = population_year(set(population["year"].to_pylist()), taken)
    residents = population_by_municipality(population, year)
    counts = _service_counts(services)
    empty = {"services": 0, "places": 0, "elderly_services": 0, "elderly_places": 0}
    rows = [
        {
            "municipality_code": m["municipality_code"],
            "municipality_name": m["display_name"],
            "comarca_code": m["comarca_code"],
            "snapshot_date": taken,
            **_measures(counts.get(m["municipality_code"], empty), residents.get(m["municipality_code"], {}), year),
        }
        for m in municipalities.to_pylist()
    ]
    return pa.Table.from_pylist(rows, schema=AGG_COVERAGE_MUNICIPALITY_SCHEMA)


def agg_coverage_comarca(by_municipality: pa.Table, comarques: pa.Table) -> pa.Table:
    """Per comarca: the sums of its municipalities, and the rates of the sums (not an average of rates).

    Raises
    ------
    NoInputRows
        When there is no municipality row.
    """
    if by_municipality.num_rows == 0:
        raise NoInputRows("agg_coverage_municipality is empty")
    names = dict(zip(comarques["comarca_code"].to_pylist(), comarques["comarca_name"].to_pylist(), strict=True))
    totals: dict[str, dict[str, Any]] = {}
    for row in by_municipality.to_pylist():
        entry = totals.setdefault(
            row["comarca_code"],
            {
                "snapshot_date": row["snapshot_date"],
                "population_year": row["population_year"],
                "municipalities": 0,
                "with_elderly": 0,
                "counts": {"services": 0, "places": 0, "elderly_services": 0, "elderly_places": 0},
                "residents": {"total": 0, ELDERLY_BAND: 0},
            },
        )
        entry["municipalities"] += 1
        entry["with_elderly"] += 1 if row["elderly_places"] else 0
        for name in entry["counts"]:
            entry["counts"][name] += row[name]
        entry["residents"]["total"] += row["population"] or 0
        entry["residents"][ELDERLY_BAND] += row["population_65_plus"] or 0
    rows = [
        {
            "comarca_code": code,
            "comarca_name": names.get(code),
            "snapshot_date": entry["snapshot_date"],
            "municipalities": entry["municipalities"],
            "municipalities_with_elderly_places": entry["with_elderly"],
            **_measures(entry["counts"], entry["residents"], entry["population_year"]),
        }
        for code, entry in totals.items()
    ]
    return pa.Table.from_pylist(rows, schema=AGG_COVERAGE_COMARCA_SCHEMA)
