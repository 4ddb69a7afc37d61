"""Pure Table -> Table logic: the merge rule, duplicate keys, number and year parsing, territory keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from transformer.domain import (
    Check,
    Lineage,
    add_duplicate_reasons,
    build_table,
    evaluate,
    merge_latest,
    parse_numbers,
    parse_years,
    said,
    territory_key,
    territory_keys,
)
from transformer.schemas import BLS_OBSERVATION

OLD = Lineage("landing/a.json", datetime(2026, 1, 1, tzinfo=UTC), "20260101T000000Z-00000001")
NEW = Lineage("landing/b.json", datetime(2026, 2, 1, tzinfo=UTC), "20260201T000000Z-00000002")


def observations(rows: list[tuple[str, int, str, float | None]], lineage: Lineage, footnote: str | None = None):
    columns = {
        "series_id": pa.array([r[0] for r in rows], pa.string()),
        "year": pa.array([r[1] for r in rows], pa.int32()),
        "period": pa.array([r[2] for r in rows], pa.string()),
        "value": pa.array([r[3] for r in rows], pa.float64()),
        "footnote_codes": pa.array([footnote] * len(rows), pa.string()),
        "source_file": pa.array(["api"] * len(rows), pa.string()),
    }
    return build_table(BLS_OBSERVATION, columns, lineage)


def values(table: pa.Table) -> dict[tuple[str, int, str], float | None]:
    return {(r["series_id"], r["year"], r["period"]): r["value"] for r in table.to_pylist()}


def test_newest_ingestion_wins_and_keys_only_in_staging_are_kept():
    existing = observations([("A", 2020, "M01", 1.0), ("A", 2021, "M01", 2.0)], OLD)
    incoming = observations([("A", 2021, "M01", 2.5), ("A", 2022, "M01", 3.0)], NEW)

    merged = merge_latest(existing, incoming, BLS_OBSERVATION)

    assert values(merged.table) == {("A", 2020, "M01"): 1.0, ("A", 2021, "M01"): 2.5, ("A", 2022, "M01"): 3.0}
    assert (merged.rows_written, merged.rows_new, merged.rows_revised) == (2, 1, 1)
    assert merged.table.schema == BLS_OBSERVATION.schema


def test_an_older_landing_merged_late_loses_to_the_newer_one():
    newer = observations([("A", 2021, "M01", 2.5)], NEW)
    late_old = observations([("A", 2021, "M01", 2.0), ("A", 2019, "M01", 0.5)], OLD)

    merged = merge_latest(newer, late_old, BLS_OBSERVATION)

    assert values(merged.table) == {("A", 2021, "M01"): 2.5, ("A", 2019, "M01"): 0.5}
    assert (merged.rows_written, merged.rows_new, merged.rows_revised) == (1, 1, 0)


def test_the_merge_does_not_depend_on_processing_order():
    a = observations([("A", 2021, "M01", 1.0), ("B", 2021, "M01", 5.0)], OLD)
    b = observations([("A", 2021, "M01", 2.0)], NEW)
    one = merge_latest(merge_latest(None, a, BLS_OBSERVATION).table, b, BLS_OBSERVATION).table
    other = merge_latest(merge_latest(None, b, BLS_OBSERVATION).table, a, BLS_OBSERVATION).table
    assert one.equals(other)


def test_reprocessing_the_same_rows_changes_nothing():
    rows = observations([("A", 2021, "M02", 1.0), ("A", 2021, "M01", None)], OLD)
    first = merge_latest(None, rows, BLS_OBSERVATION).table
    again = merge_latest(first, rows, BLS_OBSERVATION)
    assert again.table.equals(first)
    assert again.rows_revised == 0 and again.rows_new == 0


def test_a_changed_footnote_alone_is_a_revision():
    existing = observations([("A", 2021, "Q01", 1.0)], OLD)
    incoming = observations([("A", 2021, "Q01", 1.0)], NEW, footnote="R")
    assert merge_latest(existing, incoming, BLS_OBSERVATION).rows_revised == 1


def test_duplicate_keys_in_one_input_are_flagged_after_the_first():
    table = observations([("A", 2021, "M01", 1.0), ("B", 2021, "M01", 2.0), ("A", 2021, "M01", 3.0)], OLD)
    reason = add_duplicate_reasons(None, table, ("series_id", "year", "period"))
    assert reason.to_pylist() == [None, None, "duplicate of an earlier row with the same series_id, year, period"]
    sorted_unique = observations([("A", 2021, "M01", 1.0), ("A", 2021, "M02", 2.0)], OLD)
    assert add_duplicate_reasons(None, sorted_unique, ("series_id", "year", "period")) is None


@pytest.mark.parametrize(
    ("text", "value", "bad"),
    [
        ("2.6", 2.6, False),
        ("-0.6", -0.6, False),
        ("123456", 123456.0, False),
        ("1e3", 1000.0, False),
        ("abc", None, True),
        ("nan", None, True),
        ("inf", None, True),
        ("1,5", None, True),
        (None, None, False),
    ],
)
def test_numbers_are_parsed_exactly_and_anything_else_is_bad(text, value, bad):
    values_, flags = parse_numbers(pa.array(["1.0", text], pa.string()))
    parsed = values_.to_pylist()[1]
    assert (None if bad else parsed) == value
    assert flags.to_pylist()[1] is bad


@pytest.mark.parametrize(("text", "year", "bad"), [("1995", 1995, False), ("95", None, True), ("19x5", None, True)])
def test_years_are_four_digits(text, year, bad):
    years, flags = parse_years(pa.array([text, "2020"], pa.string()))
    assert years.to_pylist()[0] == year and flags.to_pylist()[0] is bad


def test_the_first_failing_check_gives_the_reason_and_clean_rows_cost_nothing():
    period = pa.array(["Q01", "Q09", "Q07"], pa.string())
    checks = [
        Check(pa.array([False, True, False]), said("period ", period, " is unknown")),
        Check(pa.array([False, True, True]), "second check"),
    ]
    assert evaluate(checks, 3).to_pylist() == [None, "period 'Q09' is unknown", "second check"]
    assert evaluate([Check(pa.array([False, False]), "never")], 2) is None


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Vallès Occidental", "valles occidental"),
        ("L'Hospitalet de Llobregat", "l hospitalet de llobregat"),
        ("Hospitalet de Llobregat, L'", "l hospitalet de llobregat"),
        ("  Pallars   Jussà ", "pallars jussa"),
        ("Val d'Aran", "val d aran"),
        ("Cal·lús", "callus"),
        ("Vilanova i la Geltrú", "vilanova i la geltru"),
        ("Bisbal d'Empordà, La", "la bisbal d emporda"),
    ],
)
def test_territory_names_become_join_keys(name, key):
    assert territory_key(name) == key


def test_territory_keys_are_computed_per_distinct_name_for_every_row():
    names = pa.array(["Barcelonès", None, "Barcelonès", "Osona"], pa.string())
    assert territory_keys(names).to_pylist() == ["barcelones", None, "barcelones", "osona"]


def test_a_table_found_strictly_sorted_is_not_checked_again_on_a_longer_key():
    from transformer import domain

    # ``c`` cannot be compared at all (pyarrow has no ``less`` for structs): any comparison of it raises
    points = pa.array([{"x": 1}, {"x": 1}, {"x": 1}])
    table = pa.table({"a": ["x", "x", "y"], "b": [1, 2, 1], "c": points})
    assert domain.strictly_sorted(table, ("a", "b"))

    assert domain.strictly_sorted(table, ("a", "b", "c"))  # sorted on a prefix of the key: sorted on the key
    with pytest.raises(pa.ArrowNotImplementedError):
        domain.strictly_sorted(table, ("c", "a"))  # another key is checked
    same_rows = pa.table({"a": ["x", "x", "y"], "b": [1, 2, 1], "c": points})
    with pytest.raises(pa.ArrowNotImplementedError):
        domain.strictly_sorted(same_rows, ("a", "b", "c"))  # another table is checked
    # AND those checks give their own answers on columns that compare
    comparable = pa.table({"a": ["x", "x", "y"], "b": [1, 2, 1], "c": ["p", "p", "p"]})
    assert not domain.strictly_sorted(comparable, ("c", "a"))
    assert domain.strictly_sorted(comparable, ("a", "b", "c"))
    unsorted = pa.table({"a": ["y", "x"], "b": [1, 1]})
    assert not domain.strictly_sorted(unsorted, ("a", "b"))
