"""The territory dimension and the resolution of every source's way of naming a municipality onto it."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from modeler.catalunya import territory as t
from modeler.catalunya.checks import ValidMunicipalityCodes
from modeler.checks import CheckContext
from tests.unit.modeler.catalunya_answers import MUNICIPALITIES_CSV, municipalities, rows
from tests.unit.modeler.staging_builder import socrata_staging


@pytest.fixture(scope="module")
def dimension() -> pa.Table:
    built = t.dim_municipality(socrata_staging("9aju-tpwc"))
    assert built.rejected[0].rows.num_rows == 0
    return built.table


@pytest.fixture(scope="module")
def territory(dimension) -> t.Territory:
    return t.Territory(dimension)


def test_the_idescat_code_is_the_ine_code_and_its_check_digit_for_all_947_municipalities():
    codes = [r["Codi"] for r in rows(MUNICIPALITIES_CSV)]
    assert len(codes) == 947
    assert all(t.idescat_code(code[:5]) == code for code in codes)
    assert t.idescat_code("08001") == "080018"  # Abrera
    assert t.code_problem("080017", 6) == "check digit of 080017 is wrong (expected 8)"
    with pytest.raises(ValueError, match="not a 5-digit"):
        t.check_digit("0800")


def test_codes_are_read_whatever_type_the_source_gave_them():
    assert t.code_text("080018", 6) == "080018"
    assert t.code_text(80018.0, 6) == "080018"  # a number column that lost the leading zero
    assert t.code_text(" 08001 ", 5) == "08001"
    assert t.code_text(80018.5, 6) is None
    assert t.code_text("08-001", 5) is None
    assert t.code_text("1234567", 6) is None


def test_the_dimension_carries_every_official_attribute(dimension):
    assert dimension.num_rows == 947
    rows_by_code = {r["municipality_code"]: r for r in dimension.to_pylist()}
    fatarella = rows_by_code["430568"]
    assert fatarella == {
        "municipality_code": "430568",
        "ine_code": "43056",
        "municipality_name": "Fatarella, la",
        "display_name": "la Fatarella",
        "comarca_code": "37",
        "comarca_name": "Terra Alta",
        "province_code": "43",
        "province_name": "Tarragona",
        "latitude": fatarella["latitude"],
        "longitude": fatarella["longitude"],
        "utm_x": fatarella["utm_x"],
        "utm_y": fatarella["utm_y"],
    }
    assert 41.1 < fatarella["latitude"] < 41.2 and 0.4 < fatarella["longitude"] < 0.5
    assert rows_by_code["080193"]["display_name"] == "Barcelona"
    expected = {code: (m.name, m.comarca_code) for code, m in municipalities().items()}
    assert {r["municipality_code"]: (r["municipality_name"], r["comarca_code"]) for r in dimension.to_pylist()} == (
        expected
    )
    comarques = t.dim_comarca(dimension).to_pylist()
    assert len(comarques) == 42
    cerdanya = next(c for c in comarques if c["comarca_name"] == "Cerdanya")
    assert cerdanya["province_names"] == "Girona, Lleida"  # a comarca that straddles two provinces
    assert ValidMunicipalityCodes().evaluate(dimension, CheckContext()).passed


def test_a_bad_row_of_the_municipality_list_is_rejected_with_its_reason_not_guessed():
    staged = socrata_staging("9aju-tpwc")
    codes = staged["codi"].to_pylist()
    codes[0], codes[1], codes[2] = "251903", codes[3], None  # a wrong check digit, a duplicate, no code
    staged = staged.set_column(0, "codi", pa.array(codes, pa.string()))
    built = t.dim_municipality(staged)
    reasons = sorted(built.rejected[0].rows["reason"].to_pylist())
    assert built.table.num_rows == 947 - 4  # the three, and the original of the duplicated code
    assert reasons == [
        "check digit of 251903 is wrong (expected 2)",
        f"code {codes[3]} appears 2 times in the municipality list",
        f"code {codes[3]} appears 2 times in the municipality list",
        "not a 6-digit municipality code",
    ]
    assert built.rejected[0].rows_in == 947


@pytest.mark.parametrize(
    ("name", "comarca", "code", "method"),
    [
        ("Fatarella, la", "Terra Alta", "430568", t.BY_NAME),  # the register's form
        ("La Fatarella", None, "430568", t.BY_NAME),
        ("FATARELLA, LA", None, "430568", t.BY_NAME),
        ("Castell - Platja d'Aro", "Baix Empordà", "170486", t.BY_NAME),  # punctuation does not count
        ("L'Hospitalet de Llobregat", None, "081017", t.BY_NAME),
        ("ESQUIROL, Lâ€™", None, "082541", t.BY_NAME),  # UTF-8 read as Windows-1252, as the electricity file has it
        ("Sant Carles de la Ràpita", "Montsià", "431362", t.BY_FORMER_NAME),  # renamed la Ràpita
        ("Viella", None, "252430", t.BY_FORMER_NAME),  # Vielha e Mijaran, the LGBTI register's spelling
        ("Molar", "Priorat", "430859", t.BY_NAME_WITHOUT_ARTICLE),  # el Molar
        ("Bítem (Tortosa)", "Baix Ebre", "431554", t.BY_LOCALITY),
        ("Jesús-Tortosa", "Baix Ebre", "431554", t.BY_LOCALITY),
        ("Les Fonts (St. Quirze del Vallès)", "Vallès Occidental", "082384", t.BY_LOCALITY),
        ("Les Roquetes. Sant Pere de Ribes", "Garraf", "082310", t.BY_LOCALITY),
    ],
)
def test_every_spelling_of_a_municipality_resolves_to_its_code(territory, name, comarca, code, method):
    resolution = territory.resolve_name(name, comarca)
    assert (resolution.code, resolution.method) == (code, method)


def test_a_unique_name_wins_over_an_outdated_comarca_and_says_so(territory):
    # Torà is in the Segarra in the municipality list; the register still files it under the Solsonès
    resolution = territory.resolve_name("Torà", "Solsonès")
    assert resolution.code == "252234"
    assert resolution.comarca_differs
    # a comarca's former name is its name: Aran was the Val d'Aran
    assert not territory.resolve_name("Vielha e Mijaran", "Val d'Aran").comarca_differs


def test_what_does_not_resolve_is_never_guessed(territory):
    cases = {
        ("Esparraguera", "Baix Llobregat"): "no municipality of Catalunya has this name",  # a typo: no fuzzy match
        ("Bellaterra", "Vallès Occidental"): "no municipality of Catalunya has this name",  # a locality
        (None, "Garraf"): "no municipality name",
        # a loose match (a locality part) in another comarca than the row gives is not taken
        ("Bítem (Tortosa)", "Garraf"): "matches Tortosa only loosely, and that is not in the comarca given",
    }
    for (name, comarca), reason in cases.items():
        resolution = territory.resolve_name(name, comarca)
        assert (resolution.code, resolution.reason) == (None, reason), name


def test_namesakes_are_told_apart_by_the_comarca_or_not_at_all():
    base = t.dim_municipality(socrata_staging("9aju-tpwc")).table.to_pylist()
    # GIVEN a second "Vilanova" in another comarca (the list has none: made up for the test)
    twins = [
        {**base[0], "municipality_code": "080018", "municipality_name": "Vilanova", "comarca_code": "11",
         "comarca_name": "Baix Llobregat"},
        {**base[1], "municipality_code": "170013", "municipality_name": "Vilanova", "comarca_code": "02",
         "comarca_name": "Alt Empordà"},
    ]  # fmt: skip
    territory = t.Territory(pa.Table.from_pylist(twins, schema=t.DIM_MUNICIPALITY_SCHEMA))
    assert territory.resolve_name("Vilanova", "Alt Empordà").code == "170013"
    assert territory.resolve_name("Vilanova", "Baix Llobregat").code == "080018"
    ambiguous = territory.resolve_name("Vilanova")
    assert ambiguous.code is None
    assert ambiguous.reason == (
        "matches 2 municipalities and the comarca does not decide: Vilanova (Baix Llobregat), Vilanova (Alt Empordà)"
    )


def test_codes_resolve_by_the_5_or_6_digit_code_and_compare_the_name(territory):
    abrera = territory.resolve_code("08001", 5, "ABRERA")
    assert (abrera.code, abrera.method, abrera.name_differs) == ("080018", t.BY_CODE, False)
    masarac = territory.resolve_code("17100", 5, "MASARAC I VILARNADAL")  # the code decides; the name differs
    assert masarac.code == "171002" and masarac.name_differs
    assert territory.resolve_code("080018", 6, "Abrera").code == "080018"
    assert territory.resolve_code("99999", 5).reason == "the code is not in the municipality list"
    assert territory.resolve_code("080017", 6).reason == "check digit of 080017 is wrong (expected 8)"


def test_only_the_newest_landing_of_a_snapshot_table_counts():
    old, new = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    table = pa.table(
        {"registre": ["S1", "S1", "S2"], "_ingested_at": pa.array([old, new, new], pa.timestamp("us", "UTC"))}
    )
    assert t.current_snapshot(table)["registre"].to_pylist() == ["S1", "S2"]
