"""Socrata: types from the metadata, JSON arrays read in bounded pieces whatever their layout."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from tests.unit.transformer.support import FIXTURES
from transformer.domain import Lineage, PayloadRejected
from transformer.socrata import cast_rows, check_fields, iter_row_pieces, plan_from_metadata

LINEAGE = Lineage(
    "landing/socrata/abcd-1234/x/part-00000.json", datetime(2026, 11, 21, tzinfo=UTC), "20261121T080000Z-0a1b2c3d"
)
VIEWS = {
    "id": "abcd-1234",
    "columns": [
        {"fieldName": "nom", "dataTypeName": "text", "position": 1},
        {"fieldName": "capacitat", "dataTypeName": "number", "position": 2},
        {"fieldName": "inscripcio", "dataTypeName": "calendar_date", "position": 3},
        {"fieldName": "actiu", "dataTypeName": "checkbox", "position": 4},
        {"fieldName": "localitzacio", "dataTypeName": "point", "position": 5},
        {"fieldName": "comarca", "dataTypeName": "text", "position": 6},
        {"fieldName": "municipi", "dataTypeName": "text", "position": 7},
        {"fieldName": ":@computed_region_bh64_c7uy", "dataTypeName": "number", "position": 8},
    ],
}
ROWS = [
    {
        "nom": 'Residència },{ "Sol"',  # a cheap cut at '},{' here would split inside a string
        "capacitat": "120",
        "inscripcio": "2019-03-01T00:00:00.000",
        "actiu": True,
        "localitzacio": {"type": "Point", "coordinates": [2.1734, 41.3851]},
        "comarca": "Barcelonès",
        "municipi": "Barcelona",
        ":@computed_region_bh64_c7uy": "512",
    },
    {"nom": "Centre de dia", "comarca": "Vallès Occidental", "municipi": "Sant Cugat del Vallès"},  # nulls omitted
    {"nom": "Llar", "capacitat": "8", "actiu": False, "comarca": "Val d'Aran", "municipi": "Vielha e Mijaran"},
]


def plan():
    return plan_from_metadata(json.dumps(VIEWS).encode(), "abcd-1234", "views.json", "k")


def read(payload: bytes, piece_bytes: int = 64) -> list[dict]:
    p = plan()
    rows = []
    for elements in iter_row_pieces(io.BytesIO(payload), p.row_type, "page", "k", piece_bytes=piece_bytes):
        check_fields(elements, p, "page", "k")
        good, bad = cast_rows(elements, p, LINEAGE, len(rows))
        assert bad.num_rows == 0, bad.to_pylist()
        rows.extend(good.to_pylist())
    return rows


LAYOUTS = {
    "compact": json.dumps(ROWS, separators=(",", ":")).encode(),
    "soda": ("[" + "\n,".join(json.dumps(r, separators=(",", ":")) for r in ROWS) + "]\n").encode(),
    "pretty": json.dumps(ROWS, indent=2, ensure_ascii=False).encode(),
    "spaced": json.dumps(ROWS).encode(),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("piece_bytes", [16, 64, 1 << 20])
def test_every_layout_and_piece_size_gives_the_same_typed_rows(layout, piece_bytes):
    rows = read(LAYOUTS[layout], piece_bytes)
    assert [r["nom"] for r in rows] == ['Residència },{ "Sol"', "Centre de dia", "Llar"]
    first = rows[0]
    assert first["capacitat"] == 120.0 and first["actiu"] is True
    assert first["inscripcio"] == datetime(2019, 3, 1)
    assert (first["localitzacio_lat"], first["localitzacio_lon"]) == (41.3851, 2.1734)
    assert first["computed_region_bh64_c7uy"] == 512.0
    assert rows[1]["capacitat"] is None and rows[1]["localitzacio_lat"] is None  # omitted fields are nulls
    assert [r["territory_comarca"] for r in rows] == ["barcelones", "valles occidental", "val d aran"]
    assert [r["territory_municipality"] for r in rows] == ["barcelona", "sant cugat del valles", "vielha e mijaran"]
    assert rows[2]["comarca"] == "Val d'Aran"  # the original name is kept beside the key


def test_an_element_holding_an_array_of_objects_is_not_cut_inside():
    views = {"columns": [{"fieldName": "nom", "dataTypeName": "text"}, {"fieldName": "web", "dataTypeName": "url"}]}
    p = plan_from_metadata(json.dumps(views).encode(), "abcd-1234", "v", "k")
    payload = json.dumps(
        [{"nom": "a},{b", "web": {"url": "https://x.cat", "description": "{},{"}}, {"nom": "c"}]
    ).encode()
    pieces = list(iter_row_pieces(io.BytesIO(payload), p.row_type, "page", "k", piece_bytes=8))
    good, _ = cast_rows(pa.concat_arrays(pieces), p, LINEAGE, 0)
    assert good.column("nom").to_pylist() == ["a},{b", "c"]
    assert good.column("web").to_pylist() == ["https://x.cat", None]


def test_an_empty_array_is_zero_rows():
    assert read(b"[]") == [] and read(b"  [ \n ]\n") == []


@pytest.mark.parametrize(
    ("payload", "check", "text"),
    [
        (b"", "payload.empty", "is empty"),
        (b"<html><body>Service unavailable</body></html>", "payload.html", "is an HTML page"),
        (b'{"error": true, "message": "query timeout"}', "payload.json", "is not a JSON array of rows"),
        (LAYOUTS["soda"][:-30], "payload.json", "truncated"),
        (LAYOUTS["compact"][:-2], "payload.json", "truncated"),
        (b'[{"nom": "a"}, {"nom": "b"', "payload.json", "truncated"),
        (b'[{"nom": "a"},, {"nom": "b"}]', "payload.json", "is not valid JSON"),
        (b'[{"nom": 7}]', "schema.types", "changed schema"),
    ],
    ids=["empty", "html", "error-object", "truncated-soda", "truncated-compact", "cut-element", "bad-json", "types"],
)
def test_bad_pages_are_rejected_whole_with_a_reason(payload, check, text):
    with pytest.raises(PayloadRejected) as caught:
        read(payload, piece_bytes=32)
    assert caught.value.check == check
    assert text in caught.value.reason


def test_bad_cells_are_rejected_by_row():
    rows = [
        {"nom": "ok", "capacitat": "3"},
        {"nom": "bad number", "capacitat": "tres"},
        {"nom": "bad date", "inscripcio": "2019-13-45T00:00:00.000"},
        {"nom": "bad point", "localitzacio": {"type": "Point", "coordinates": [2.1]}},
    ]
    p = plan()
    [elements] = list(iter_row_pieces(io.BytesIO(json.dumps(rows).encode()), p.row_type, "page", "k"))
    good, bad = cast_rows(elements, p, LINEAGE, 100)
    assert good.column("nom").to_pylist() == ["ok"]
    assert bad.column("_reason").to_pylist() == [
        "capacitat 'tres' is not a number",
        "inscripcio '2019-13-45T00:00:00.000' is not a date",
        "localitzacio is not a point with a latitude and a longitude",
    ]
    assert bad.column("_record").to_pylist() == [101, 102, 103]
    assert bad.column("capacitat").to_pylist()[0] == "tres"  # the raw value as received


@pytest.mark.parametrize(
    ("columns", "text"),
    [
        ([{"fieldName": "shape", "dataTypeName": "multipolygon"}], "has Socrata type 'multipolygon'"),
        ([{"fieldName": "a b", "dataTypeName": "text"}, {"fieldName": "a_b", "dataTypeName": "text"}], "collides"),
        ([{"fieldName": "p", "dataTypeName": "point"}, {"fieldName": "p_lat", "dataTypeName": "text"}], "same name"),
        ([], "lists no columns"),
    ],
)
def test_metadata_staging_cannot_honour_is_rejected(columns, text):
    with pytest.raises(PayloadRejected) as caught:
        plan_from_metadata(json.dumps({"columns": columns}).encode(), "abcd-1234", "views.json", "k")
    assert text in caught.value.reason


def test_the_real_siad_dataset_is_typed_from_its_metadata():
    p = plan_from_metadata((FIXTURES / "9uvn-hv6j.views.json").read_bytes(), "9uvn-hv6j", "v", "k")
    assert (p.comarca, p.municipality) == ("comarca", "poblaci")
    stream = io.BytesIO((FIXTURES / "9uvn-hv6j.json").read_bytes())
    [elements] = list(iter_row_pieces(stream, p.row_type, "page", "k"))
    good, bad = cast_rows(elements, p, LINEAGE, 0)
    assert (good.num_rows, bad.num_rows) == (134, 0)
    assert good.schema.field("geocoded_column_lat").type == pa.float64()
    raw = json.loads((FIXTURES / "9uvn-hv6j.json").read_bytes())
    assert good.column("geocoded_column_lon").to_pylist()[0] == raw[0]["geocoded_column"]["coordinates"][0]
    assert good.column("territory_municipality").to_pylist()[0] == "barcelona"


# -- a large piece is parsed as two halves at once ------------------------------------------------------------------


def pieces(payload: bytes, split_bytes: int, piece_bytes: int = 1 << 20) -> list[pa.StructArray]:
    return list(iter_row_pieces(io.BytesIO(payload), plan().row_type, "page", "k", piece_bytes, split_bytes))


def typed(arrays: list[pa.StructArray]) -> list[dict]:
    good, bad = cast_rows(pa.concat_arrays(arrays), plan(), LINEAGE, 0)
    assert bad.num_rows == 0, bad.to_pylist()
    return good.to_pylist()


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_piece_parsed_in_halves_gives_the_rows_of_the_piece_parsed_whole(layout):
    rows = [{**ROWS[i % 3], "nom": f"{ROWS[i % 3]['nom']} {i}"} for i in range(300)]
    payload = {  # the layout's own separators, on more rows
        "compact": json.dumps(rows, separators=(",", ":")),
        "soda": "[" + "\n,".join(json.dumps(r, separators=(",", ":")) for r in rows) + "]\n",
        "pretty": json.dumps(rows, indent=2, ensure_ascii=False),
        "spaced": json.dumps(rows),
    }[layout].encode()
    whole = pieces(payload, split_bytes=1 << 40)
    halves = pieces(payload, split_bytes=64)
    assert [len(a) for a in whole] == [300] and len(halves) == 2 and sum(len(a) for a in halves) == 300
    assert typed(halves) == typed(whole)
    assert [r["nom"] for r in typed(halves)] == [r["nom"] for r in rows]  # every row once, in order


def test_a_middle_cut_inside_a_string_is_never_taken():
    # The first boundary past the middle of the piece is the '},{' inside the first row's name.
    rows = [{"nom": "a" * 200 + " },{ " + "b" * 20}, {"nom": "c"}]
    payload = json.dumps(rows).encode()
    assert payload.find(b"},{", len(payload) // 2) < payload.find(b'"}, {"nom": "c')
    arrays = pieces(payload, split_bytes=64)
    assert [len(a) for a in arrays] == [2]
    assert [r["nom"] for r in typed(arrays)] == [rows[0]["nom"], "c"]


def test_a_middle_cut_between_objects_nested_in_a_row_is_never_taken():
    row_type = pa.struct([("nom", pa.string()), ("extra", pa.list_(pa.struct([("x", pa.int64())])))])
    rows = [{"nom": "a" * 40, "extra": [{"x": i} for i in range(40)]}, {"nom": "b"}]
    payload = json.dumps(rows).encode()
    assert payload.find(b"}, {", len(payload) // 2) < payload.find(b'{"nom": "b"')  # the cut is inside row 0
    arrays = list(iter_row_pieces(io.BytesIO(payload), row_type, "page", "k", 1 << 20, 64))
    assert [len(a) for a in arrays] == [2]
    assert pa.concat_arrays(arrays).field("extra").to_pylist()[0] == rows[0]["extra"]


@pytest.mark.parametrize(
    ("first", "second", "check"),
    [
        (b'{"nom": "ok"}', b'{"nom": "Vall\xe8s"}', "payload.encoding"),  # latin-1 in the second half
        (b'{"nom": "Vall\xe8s"}', b'{"nom": "ok"}', "payload.encoding"),
        (b'{"nom": "Vall\xe8s"}', b'{"nom": "ok",, "x": 1}', "payload.json"),  # bad JSON first, as parsed whole
    ],
)
def test_a_bad_half_rejects_the_page_as_the_whole_piece_would(first, second, check):
    payload = b"[" + b",".join([first] * 20 + [second] * 20) + b"]"
    with pytest.raises(PayloadRejected) as caught:
        pieces(payload, split_bytes=64)
    assert caught.value.check == check
    with pytest.raises(PayloadRejected) as whole:
        pieces(payload, split_bytes=1 << 40)
    assert whole.value.check == check


def test_repeated_dates_are_typed_and_checked_as_distinct_ones_are():
    # 400 rows over four texts take the path that parses each distinct text once; the same texts each once do not.
    texts = ["2019-03-01T00:00:00.000", "2019-13-45T00:00:00.000", " 2020-02-29 ", "ahir"]
    rows = [{"nom": str(i), "inscripcio": texts[i % 4]} for i in range(400)]
    p = plan()
    [elements] = list(iter_row_pieces(io.BytesIO(json.dumps(rows).encode()), p.row_type, "page", "k"))
    good, bad = cast_rows(elements, p, LINEAGE, 0)
    assert good.column("inscripcio").to_pylist() == [datetime(2019, 3, 1), datetime(2020, 2, 29)] * 100
    assert bad.column("_reason").to_pylist()[:2] == [
        "inscripcio '2019-13-45T00:00:00.000' is not a date",
        "inscripcio 'ahir' is not a date",
    ]
    assert bad.num_rows == 200 and bad.column("_record").to_pylist()[:4] == [1, 3, 5, 7]
    [once] = list(iter_row_pieces(io.BytesIO(json.dumps(rows[:4]).encode()), p.row_type, "page", "k"))
    good_once, bad_once = cast_rows(once, p, LINEAGE, 0)
    assert good_once.column("inscripcio").to_pylist() == good.column("inscripcio").to_pylist()[:2]
    assert bad_once.column("_reason").to_pylist() == bad.column("_reason").to_pylist()[:2]
