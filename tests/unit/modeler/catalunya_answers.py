"""The Catalunya answers computed straight from the raw CSV exports in tests/fixtures/catalunya, for the tests to
compare the marts with.

Independent of the modeler: Python's csv module and Fraction arithmetic, and the rules written out again in their
plainest form. A register municipality is looked up by its exact name in the municipality list (both publish the
``Fatarella, la`` form), or through ``RENAMED`` (the names the register still uses for ten renamed municipalities,
written here by hand from the municipality list), and ``Castell - Platja d'Aro`` as the one spelling difference.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "catalunya"
REGISTER_CSV = FIXTURES / "ivft-vegh_registre_entitats_serveis_establiments_socials_20240515_rows.csv"
POPULATION_CSV = FIXTURES / "poblacio_municipi_rang_edat_sexe_b4rr-d25b_2019-2020_PEEVE.csv"
MUNICIPALITIES_CSV = FIXTURES / "municipis_catalunya_geo_9aju-tpwc_2023_raulvillalba.csv"
ENERGY_EXCERPT_CSV = FIXTURES / "8idm-becu_excerpt_garraf_aran_and_three_municipalities.csv"
LGBTI_CSV = FIXTURES / "utrz-jf79_serveis_atencio_integral_LGBTI.csv"
WOMEN_CSV = FIXTURES / "amca-cgrp_entitats_de_dones.csv"

# register name -> the municipality list's name
RENAMED = {
    "Palau de Plegamans": "Palau-solità i Plegamans",
    "Calonge": "Calonge i Sant Antoni",
    "Santa Maria de Corcó": "Esquirol, l'",
    "Castell - Platja d'Aro": "Castell-Platja d'Aro",
    "Roda de Barà": "Roda de Berà",
    "Bigues i Riells": "Bigues i Riells del Fai",
    "Sant Carles de la Ràpita": "Ràpita, la",
    "Cabrera d'Igualada": "Cabrera d'Anoia",
    "Vimbodí": "Vimbodí i Poblet",
    "Saus": "Saus, Camallera i Llampaies",
}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@dataclass(frozen=True)
class Municipality:
    code: str
    name: str
    comarca_code: str
    comarca_name: str


def municipalities() -> dict[str, Municipality]:
    """By Idescat code."""
    return {
        r["Codi"]: Municipality(r["Codi"], r["Nom"], r["Codi comarca"], r["Nom comarca"])
        for r in rows(MUNICIPALITIES_CSV)
    }


def is_elderly_care(service_type: str) -> bool:
    return "gent gran" in service_type or "persones grans" in service_type


@dataclass(frozen=True)
class Coverage:
    population: int
    population_65_plus: int
    services: int
    places: int
    elderly_places: int

    @property
    def elderly_rate(self) -> Fraction | None:
        return Fraction(1000 * self.elderly_places, self.population_65_plus) if self.population_65_plus else None

    @property
    def places_rate(self) -> Fraction | None:
        return Fraction(1000 * self.places, self.population) if self.population else None


def register_municipality_codes() -> dict[str, str]:
    """Register id -> municipality code."""
    by_name = {m.name: m.code for m in municipalities().values()}
    return {r["Registre"]: by_name[RENAMED.get(r["Municipi"], r["Municipi"])] for r in rows(REGISTER_CSV)}


def coverage(year: int = 2020) -> tuple[dict[str, Coverage], dict[str, Coverage]]:
    """(by municipality code, by comarca code): residents, residents 65+, services, places, elderly-care places."""
    places = register_municipality_codes()
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows(REGISTER_CSV):
        entry = counts[places[r["Registre"]]]
        entry[0] += 1
        entry[1] += int(r["Capacitat"])
        if is_elderly_care(r["Tipologia"]):
            entry[2] += int(r["Capacitat"])
    residents: dict[str, tuple[int, int]] = {}
    for r in rows(POPULATION_CSV):
        if int(r["Any"]) == year:
            total = sum(int(r[f"Total. {band}"]) for band in ("De 0 a 14 anys", "De 15 a 64 anys", "De 65 anys i més"))
            residents[r["Codi"]] = (total, int(r["Total. De 65 anys i més"]))
    by_municipality = {
        code: Coverage(residents[code][0], residents[code][1], *counts.get(code, [0, 0, 0]))
        for code in municipalities()
    }
    by_comarca: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for code, m in municipalities().items():
        c = by_municipality[code]
        for i, value in enumerate((c.population, c.population_65_plus, c.services, c.places, c.elderly_places)):
            by_comarca[m.comarca_code][i] += value
    return by_municipality, {code: Coverage(*values) for code, values in by_comarca.items()}


def ranked_comarques() -> list[tuple[str, Fraction]]:
    """(comarca name, elderly-care places per 1,000 residents 65+), the most first (ties by name)."""
    names = {m.comarca_code: m.comarca_name for m in municipalities().values()}
    _, by_comarca = coverage()
    ranked = [(names[code], c.elderly_rate) for code, c in by_comarca.items() if c.elderly_rate is not None]
    return sorted(ranked, key=lambda pair: (-pair[1], pair[0]))


def energy_by_comarca_sector(comarca: str) -> dict[tuple[int, int], tuple[int, int]]:
    """From the electricity excerpt, one comarca as the file names it (``GARRAF``): (year, sector) -> (kWh summed
    over the published figures, municipalities whose figure is secret)."""
    found: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows(ENERGY_EXCERPT_CSV):
        if r["Comarca"] != comarca:
            continue
        entry = found[(int(r["Any"]), int(r["Codi_Sector"]))]
        if r["Consum [kWh]"]:
            entry[0] += int(r["Consum [kWh]"])
        else:
            entry[1] += 1
    return {key: (kwh, secret) for key, (kwh, secret) in found.items()}
