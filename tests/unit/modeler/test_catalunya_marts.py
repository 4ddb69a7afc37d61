"""The Catalunya marts' rules, each on a small table or on the real exports in tests/fixtures/catalunya."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from modeler.catalunya import coverage, energy, population, services, territory
from modeler.catalunya.checks import ClosedShare, MostlyPresent
from modeler.checks import CheckContext
from modeler.domain import NoInputRows
from tests.unit.modeler.catalunya_answers import (
    ENERGY_EXCERPT_CSV,
    POPULATION_CSV,
    REGISTER_CSV,
    rows,
)
from tests.unit.modeler.staging_builder import socrata_staging

T1 = datetime(2026, 8, 7, 8, 31, tzinfo=UTC)
T2 = datetime(2026, 9, 7, 8, 31, tzinfo=UTC)
T3 = datetime(2026, 10, 7, 8, 31, tzinfo=UTC)


@pytest.fixture(scope="module")
def dimension() -> pa.Table:
    return territory.dim_municipality(socrata_staging("9aju-tpwc")).table


@pytest.fixture(scope="module")
def register() -> pa.Table:
    return socrata_staging("ivft-vegh")


def register_rows(entries: list[tuple[str, str, str, float | None]], ingested: datetime = T1) -> pa.Table:
    """A register staging table of (id, municipality, comarca, capacity) rows of elderly day centres."""
    n = len(entries)
    return pa.table(
        {
            "registre": [e[0] for e in entries],
            "nom": [f"Centre {e[0]}" for e in entries],
            "tipologia": ["Servei de centre de dia per a gent gran de caràcter temporal o permanent"] * n,
            "inscripcio": pa.array([datetime(2020, 1, 1)] * n, pa.timestamp("us")),
            "capacitat": pa.array([e[3] for e in entries], pa.float64()),
            "municipi": [e[1] for e in entries],
            "comarca": [e[2] for e in entries],
            "qualificacio": ["Entitat d'iniciativa pública"] * n,
            "_source": ["landing/socrata/ivft-vegh/ingest_date=2026-08-07/x-abc/part-00000.json"] * n,
            "_ingested_at": pa.array([ingested] * n, pa.timestamp("us", "UTC")),
        }
    )


# -- the register ---------------------------------------------------------------------------------------------------


def test_every_service_type_of_the_register_has_a_care_area():
    types = Counter(r["Tipologia"] for r in rows(REGISTER_CSV))
    areas = {name: services.care_area(name)[0] for name in types}
    assert set(areas.values()) <= set(services.CARE_AREAS)
    # the few types no rule knows are "other", and they are few
    assert sum(types[n] for n, a in areas.items() if a == "other") == 55 + 3 + 4  # experimental services and such
    assert areas["Servei de residència assistida per a gent gran de caràcter temporal o permanent"] == "elderly"
    assert areas["Servei d'atenció integral a les persones grans en l'àmbit rural"] == "elderly"
    assert areas["Servei de llar residència temporal o permanent per a persones amb discapacitat física"] == (
        "disability"
    )
    assert areas["Servei de llar amb suport temporal o permanent per a persones amb problemàtica social derivada de "
                 "malaltia mental"] == "mental_health"  # fmt: skip
    assert areas["Servei d'atenció precoç"] == "childhood_family"
    assert areas["Servei de menjador social"] == "social_exclusion"
    assert areas["Servei d'ajuda a domicili"] == "basic_social_services"
    assert areas["Servei de centre de dia per a persones amb addiccions"] == "addictions"
    elderly = sum(n for name, n in types.items() if areas[name] == "elderly")
    assert elderly == 956 + 908 + 91 + 41 + 35 + 31  # residences, day centres, homes, guardianship, rural, housing


def test_ownership_comes_from_the_qualification_and_null_is_unknown():
    assert services.ownership("Entitat d'iniciativa pública") == "public"
    assert services.ownership("Entitat privada d'iniciativa social") == "private_nonprofit"
    assert services.ownership("Entitat privada d'iniciativa mercantil") == "private_for_profit"
    assert services.ownership("null") == "unknown" and services.ownership(None) == "unknown"


def test_the_social_service_fact_has_one_row_per_service_with_its_places_and_owner(register, dimension):
    built = services.fact_social_service(register, dimension)
    fact = {r["service_id"]: r for r in built.table.to_pylist()}
    raw = {r["Registre"]: r for r in rows(REGISTER_CSV)}
    assert len(fact) == len(raw) == 6300 and built.rejected[0].rows.num_rows == 0
    fatarella = fact["S08443"]
    assert (fatarella["municipality_code"], fatarella["comarca_code"], fatarella["capacity"]) == ("430568", "37", 5)
    assert (fatarella["ownership"], fatarella["is_public"]) == ("public", True)
    assert fatarella["registration_date"] == date(2012, 10, 22)
    assert fatarella["snapshot_date"] == date(2026, 8, 7)
    # capacity is the register's, never null: its sum is the raw file's
    assert sum(r["capacity"] for r in fact.values()) == sum(int(r["Capacitat"]) for r in raw.values())
    assert Counter(r["ownership"] for r in fact.values())["unknown"] == 287  # the literal "null"
    assert MostlyPresent("capacity").evaluate(built.table, CheckContext()).passed


def test_a_register_row_that_cannot_be_placed_or_is_duplicated_is_rejected_with_its_reason(dimension):
    table = register_rows(
        [
            ("S1", "Fatarella, la", "Terra Alta", 5.0),
            ("S2", "Esparraguera", "Baix Llobregat", 10.0),  # a typo
            ("S3", "Vic", "Osona", 20.0),
            ("S3", "Vic", "Osona", 20.0),  # the same id twice
            (None, "Vic", "Osona", 1.0),
            ("S4", "Vic", "Osona", 2.5),
        ]
    )
    built = services.fact_social_service(table, dimension)
    assert built.table["service_id"].to_pylist() == ["S1"]
    rejected = built.rejected[0]
    assert (rejected.dataset, rejected.rows_in) == ("ivft-vegh", 6)
    assert rejected.rows.select(["registre", "reason"]).to_pylist() == [
        {"registre": "S2", "reason": "no municipality of Catalunya has this name"},
        {"registre": "S3", "reason": "register id S3 appears 2 times in the snapshot"},
        {"registre": "S3", "reason": "register id S3 appears 2 times in the snapshot"},
        {"registre": None, "reason": "no register id"},
        {"registre": "S4", "reason": "capacity 2.5 is not a whole number of places"},
    ]
    assert rejected.rows["example"][0].as_py() == "S2 'Esparraguera' (Baix Llobregat)"
    assert "_source" in rejected.rows.column_names  # the rows keep their lineage in quarantine


def test_service_types_list_their_services_and_places(register, dimension):
    fact = services.fact_social_service(register, dimension).table
    types = {r["service_type"]: r for r in services.dim_service_type(fact).to_pylist()}
    raw = Counter(r["Tipologia"] for r in rows(REGISTER_CSV))
    assert {name: r["services"] for name, r in types.items()} == dict(raw)
    home_help = types["Servei d'ajuda a domicili"]
    assert (home_help["places"], home_help["has_places"]) == (0, False)


# -- history --------------------------------------------------------------------------------------------------------


def test_the_history_records_the_first_snapshot_then_what_opened_and_closed(dimension):
    first = register_rows([("S1", "Vic", "Osona", 10.0), ("S2", "Vic", "Osona", 20.0)], T1)
    history = services.fact_register_changes(first, dimension, None)
    assert [(r["service_id"], r["change"]) for r in history.to_pylist()] == [("S1", "baseline"), ("S2", "baseline")]

    # a month later S2 is gone and S3 opened
    second = register_rows([("S1", "Vic", "Osona", 10.0), ("S3", "Fatarella, la", "Terra Alta", 5.0)], T2)
    history = services.fact_register_changes(second, dimension, history)
    changes = [(r["snapshot_date"], r["service_id"], r["change"], r["previous_snapshot_date"]) for r in
               history.to_pylist() if r["change"] != "baseline"]  # fmt: skip
    assert changes == [(date(2026, 9, 7), "S2", "closed", date(2026, 8, 7)), (date(2026, 9, 7), "S3", "opened",
                                                                              date(2026, 8, 7))]  # fmt: skip
    closed = next(r for r in history.to_pylist() if r["change"] == "closed")
    assert (closed["municipality_code"], closed["capacity"]) == ("082981", 20)  # where it was, with its places

    # a second read of the same day replaces that day's changes; S2 reopening later is an opening again
    again = services.fact_register_changes(second, dimension, history)
    assert again.equals(history)
    third = register_rows([("S1", "Vic", "Osona", 10.0), ("S2", "Vic", "Osona", 20.0), ("S3", "Fatarella, la",
                           "Terra Alta", 5.0)], T3)  # fmt: skip
    history = services.fact_register_changes(third, dimension, history)
    assert [(r["service_id"], r["change"]) for r in history.to_pylist() if r["snapshot_date"] == date(2026, 10, 7)] == [
        ("S2", "opened")
    ]
    totals = services.agg_register_changes(history).to_pylist()
    assert [(r["snapshot_date"], r["baseline"], r["opened"], r["closed"], r["places_opened"], r["places_closed"])
            for r in totals] == [
        (date(2026, 8, 7), 2, 0, 0, 0, 0),
        (date(2026, 9, 7), 0, 1, 1, 5, 20),
        (date(2026, 10, 7), 0, 1, 0, 20, 0),
    ]  # fmt: skip


def test_a_snapshot_that_closes_most_of_the_register_fails_its_check(dimension):
    first = register_rows([(f"S{i}", "Vic", "Osona", 1.0) for i in range(10)], T1)
    history = services.fact_register_changes(first, dimension, None)
    truncated = register_rows([("S0", "Vic", "Osona", 1.0)], T2)  # 9 of 10 gone: a cut download, not closures
    result = ClosedShare(0.5).evaluate(services.fact_register_changes(truncated, dimension, history), CheckContext())
    assert not result.passed
    assert result.detail == "9 of the 10 services before 2026-09-07 closed (90.0%): more than 50%"
    fine = register_rows([(f"S{i}", "Vic", "Osona", 1.0) for i in range(8)], T2)
    assert ClosedShare(0.5).evaluate(services.fact_register_changes(fine, dimension, history), CheckContext()).passed


# -- population -----------------------------------------------------------------------------------------------------


def test_population_has_men_and_women_by_age_band_and_sums_to_the_published_totals(dimension):
    built = population.fact_population(socrata_staging("b4rr-d25b"), dimension)
    fact = built.table.to_pylist()
    assert len(fact) == 1894 * 6 and built.rejected[0].rows.num_rows == 0
    assert {r["age_band"] for r in fact} == {"0-14", "15-64", "65+"}
    for year in (2019, 2020):
        raw = [r for r in rows(POPULATION_CSV) if int(r["Any"]) == year]
        published = sum(int(r[c]) for r in raw for c in r if c.startswith("Total."))
        assert sum(r["population"] for r in fact if r["year"] == year) == published
    abrera = {(r["sex"], r["age_band"]): r["population"] for r in fact if (r["year"], r["municipality_code"]) ==
              (2019, "080018")}  # fmt: skip
    assert abrera[("male", "0-14")] == 1205 and abrera[("female", "65+")] == 1004


def test_a_population_row_whose_totals_disagree_is_rejected(dimension):
    staged = socrata_staging("b4rr-d25b")
    totals = staged["total_de_65_anys_i_m_s"].to_pylist()
    totals[0] += 1
    staged = staged.set_column(staged.schema.get_field_index("total_de_65_anys_i_m_s"), "total_de_65_anys_i_m_s",
                               pa.array(totals, pa.float64()))  # fmt: skip
    built = population.fact_population(staged, dimension)
    (reason,) = built.rejected[0].rows["reason"].to_pylist()
    assert reason == "the 65+ total 44 is not men 22 + women 21"
    assert built.table.num_rows == (1894 - 1) * 6


# -- electricity ----------------------------------------------------------------------------------------------------


def test_electricity_keeps_secret_figures_null_and_flagged(dimension):
    built = energy.fact_energy_consumption(socrata_staging("8idm-becu"), dimension)
    fact = built.table.to_pylist()
    raw = rows(ENERGY_EXCERPT_CSV)
    assert len(fact) == len(raw) == 943 and built.rejected[0].rows.num_rows == 0
    secret = sum(1 for r in raw if not r["Consum [kWh]"])
    assert sum(r["is_confidential"] for r in fact) == secret > 0
    assert all(r["consumption_kwh"] is None for r in fact if r["is_confidential"])
    assert sum(r["consumption_kwh"] or 0 for r in fact) == sum(int(r["Consum [kWh]"] or 0) for r in raw)
    # l'Esquirol, "ESQUIROL, Lâ€™" in the file, is found by its code
    assert {r["municipality_code"] for r in fact if r["municipality_code"] == "082541"}
    sectors = energy.dim_economic_sector(socrata_staging("8idm-becu")).to_pylist()
    assert [(s["sector_code"], s["sector_name"]) for s in sectors] == [
        (1, "PRIMARI"), (3, "INDUSTRIAL"), (4, "CONSTRUCCIO I OBRES PUBLIQUES"), (5, "TRANSPORT"), (6, "SERVEIS"),
        (7, "USOS DOMESTICS"),
    ]  # fmt: skip


def test_electricity_per_resident_uses_the_same_years_population_only(dimension):
    fact = energy.fact_energy_consumption(socrata_staging("8idm-becu"), dimension).table
    people = population.fact_population(socrata_staging("b4rr-d25b"), dimension).table
    yearly = {(r["year"], r["municipality_code"]): r for r in
              energy.agg_energy_municipality_yearly(fact, dimension, people).to_pylist()}  # fmt: skip
    sitges_2020 = yearly[(2020, "082704")]
    raw = [r for r in rows(ENERGY_EXCERPT_CSV) if r["CDMUN"] == "08270" and r["Any"] == "2020"]
    published = sum(int(r["Consum [kWh]"]) for r in raw if r["Consum [kWh]"])
    residents = next(sum(int(r[c]) for c in r if c.startswith("Total.")) for r in rows(POPULATION_CSV)
                     if (r["Codi"], r["Any"]) == ("082704", "2020"))  # fmt: skip
    assert (sitges_2020["consumption_kwh"], sitges_2020["population"]) == (published, residents)
    assert sitges_2020["kwh_per_resident"] == published / residents
    assert yearly[(2023, "082704")]["population"] is None and yearly[(2023, "082704")]["kwh_per_resident"] is None


def test_a_duplicated_or_unexplained_missing_figure_is_rejected(dimension):
    staged = socrata_staging("8idm-becu").slice(0, 3)
    doubled = pa.concat_tables([staged, staged.slice(0, 1)])
    built = energy.fact_energy_consumption(doubled, dimension)
    reasons = built.rejected[0].rows["reason"].to_pylist()
    code = territory.idescat_code(staged["cdmun"][0].as_py())
    assert reasons == [f"year 2013, municipality {code}, sector 1 appear more than once"] * 2  # both, none kept
    assert built.table.num_rows == 2
    missing = staged.set_column(staged.schema.get_field_index("consum_kwh"), "consum_kwh", pa.nulls(3, pa.float64()))
    missing = missing.set_column(
        missing.schema.get_field_index("observacions"), "observacions", pa.nulls(3, pa.string())
    )
    assert set(energy.fact_energy_consumption(missing, dimension).rejected[0].rows["reason"].to_pylist()) == {
        "the consumption is missing and no secrecy note says why"
    }


# -- coverage -------------------------------------------------------------------------------------------------------


def test_coverage_divides_by_the_newest_population_year_not_after_the_snapshot():
    assert coverage.population_year({2019, 2020}, date(2024, 5, 15)) == 2020
    assert coverage.population_year({2019, 2020, 2025}, date(2024, 5, 15)) == 2020
    assert coverage.population_year({2025, 2026}, date(2024, 5, 15)) == 2025
    with pytest.raises(NoInputRows):
        coverage.population_year(set(), date(2024, 5, 15))


def test_a_municipality_without_residents_65_has_no_rate_not_an_infinite_one(dimension):
    services_table = services.fact_social_service(register_rows([("S1", "Vic", "Osona", 10.0)]), dimension).table
    people = pa.Table.from_pylist(
        [{"year": 2020, "municipality_code": "082981", "sex": s, "age_band": b, "population": 0}
         for s in ("male", "female") for b in ("0-14", "15-64", "65+")],
        schema=population.FACT_POPULATION_SCHEMA,
    )  # fmt: skip
    by_municipality = {r["municipality_code"]: r for r in
                       coverage.agg_coverage_municipality(services_table, people, dimension).to_pylist()}  # fmt: skip
    assert len(by_municipality) == 947
    vic = by_municipality["082981"]
    assert (vic["elderly_places"], vic["population_65_plus"], vic["elderly_places_per_1000_65_plus"]) == (10, 0, None)
    assert by_municipality["080018"]["services"] == 0 and by_municipality["080018"]["population"] is None
