"""BLS (bulk and API) and DataUSA parsers on the real published files, checked against the raw bytes."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest

from tests.unit.transformer.support import FIXTURES, PR_2026, api_response, bls_series_document, observation
from transformer import bls, datausa
from transformer.domain import Lineage, PayloadRejected

LINEAGE = Lineage("landing/x", datetime(2026, 11, 21, tzinfo=UTC), "20261121T080000Z-0a1b2c3d")


def test_bulk_rows_keep_exact_values_despite_padding_and_crlf():
    raw = (PR_2026 / "pr.data.0.Current").read_bytes()
    assert raw.count(b"\r\n") == 38_413 and b"PRS30006011      \t1995\tQ01\t         2.6\t\r\n" in raw
    parsed = bls.parse_bulk_observations(io.BytesIO(raw), "pr.data.0.Current", "pr", LINEAGE, "k")
    assert (parsed.rows_in, parsed.valid.num_rows, parsed.rows_rejected) == (38_412, 38_412, 0)
    first = parsed.valid.slice(0, 1).to_pylist()[0]
    assert {k: first[k] for k in ("series_id", "year", "period", "value", "footnote_codes", "source_file")} == {
        "series_id": "PRS30006011",
        "year": 1995,
        "period": "Q01",
        "value": 2.6,
        "footnote_codes": None,
        "source_file": "pr.data.0.Current",
    }
    assert parsed.valid.column("footnote_codes").to_pylist().count("R") == 212


@pytest.mark.parametrize("piece", [64, 1000, 1 << 20])
def test_bulk_files_read_in_small_pieces_give_the_same_rows(piece):
    raw = (PR_2026 / "pr.data.0.Current").read_bytes()[:20_000]
    whole = bls.parse_bulk_observations(io.BytesIO(raw), "pr.data.0.Current", "pr", LINEAGE, "k")
    pieces = bls.parse_bulk_observations(io.BytesIO(raw), "pr.data.0.Current", "pr", LINEAGE, "k", piece_bytes=piece)
    assert pieces.valid.equals(whole.valid)


@pytest.mark.parametrize("block", [256, 4096, 1 << 20])
def test_malformed_lines_are_rejected_in_file_order_when_blocks_parse_on_threads(block):
    lines = (PR_2026 / "pr.data.0.Current").read_bytes()[:60_000].splitlines(keepends=True)[:-1]
    bad = [f"PRS30006011\t20{n:02d}\tQ01\t1.5\t\textra{n}".encode() for n in range(12)]
    mixed = list(lines)
    for n, line in enumerate(bad):  # spread over the file, so over several blocks
        mixed.insert(1 + (n + 1) * (len(lines) // (len(bad) + 1)), line + b"\r\n")

    clean = bls.parse_bulk_observations(
        io.BytesIO(b"".join(lines)), "pr.data.0.Current", "pr", LINEAGE, "k", block_bytes=block
    )
    parsed = bls.parse_bulk_observations(
        io.BytesIO(b"".join(mixed)), "pr.data.0.Current", "pr", LINEAGE, "k", block_bytes=block
    )

    assert parsed.valid.equals(clean.valid)
    assert parsed.rejected.column(bls.MALFORMED_LINE).to_pylist() == [line.decode() for line in bad]
    assert set(parsed.rejected.column("_reason").to_pylist()) == {"line has 6 tab-separated fields, expected 5"}


def test_the_seasonal_mapping_file_with_its_trailing_blank_line_decodes():
    mapping = bls.parse_mapping(io.BytesIO((PR_2026 / "pr.seasonal").read_bytes()), "pr.seasonal", "k")
    assert mapping.to_pylist() == [
        {"code": "S", "text": "Seasonal Adjusted"},
        {"code": "U", "text": "Not Seasonally Adjusted"},
    ]


def test_an_unknown_mapping_code_rejects_only_that_series():
    series = (PR_2026 / "pr.series").read_bytes().replace(b"PRS30006011      \t3000\t", b"PRS30006011      \t9999\t", 1)
    mappings = {k: bls.parse_mapping(io.BytesIO((PR_2026 / f"pr.{k}").read_bytes()), k, "k") for k in bls.MAPPING_FILES}
    parsed = bls.parse_bulk_series(io.BytesIO(series), "pr.series", "pr", mappings, LINEAGE, "k")
    assert parsed.valid.num_rows == 281
    assert parsed.rejected.column("_reason").to_pylist() == ["sector_code '9999' is not in pr.sector"]


def test_the_selected_series_of_a_coalesced_response_stages_every_observation_and_nothing_else():
    body = (FIXTURES / "ryansuhr_bls_api_v2_response_2024-12-13.json").read_bytes()  # 5 series, as received
    response = json.loads(body)
    parsed = bls.parse_api_response(body, "CES0000000001", LINEAGE, "x.json", "k")
    raw = next(s for s in response["Results"]["series"] if s["seriesID"] == "CES0000000001")["data"]
    rows = parsed.observations.valid.to_pylist()
    assert len(rows) == len(raw) == 59
    assert {(r["year"], r["period"]): r["value"] for r in rows} == {
        (int(o["year"]), o["period"]): float(o["value"]) for o in raw
    }
    assert {r["source_file"] for r in rows} == {"api"} and {r["series_id"] for r in rows} == {"CES0000000001"}
    assert parsed.series is None  # no catalog was requested


def test_api_footnotes_and_dashes():
    body = api_response(
        "LNS14000000",
        [
            observation(2024, "M11", "4.2", [{"code": "P", "text": "preliminary"}, {}]),
            observation(2024, "M10", "-", [{"code": "1", "text": "population controls"}, {"code": "P"}]),
            observation(2024, "M13", "4.0"),
        ],
    )
    rows = bls.parse_api_response(body, "LNS14000000", LINEAGE, "x.json", "k").observations.valid.to_pylist()
    assert [(r["period"], r["value"], r["footnote_codes"]) for r in rows] == [
        ("M11", 4.2, "P"),
        ("M10", None, "1,P"),
        ("M13", 4.0, None),
    ]


def test_the_api_catalog_block_becomes_a_series_row():
    response = json.loads((FIXTURES / "ap_cps-situation-2015-all_options.json").read_bytes())
    body = bls_series_document(response, "LNS14000000")
    parsed = bls.parse_api_response(body, "LNS14000000", LINEAGE, "x.json", "k")
    [series] = parsed.series.valid.to_pylist()
    assert (series["series_title"], series["seasonal"], series["source_kind"]) == (
        "(Seas) Unemployment Rate",
        "S",
        "api",
    )
    assert json.loads(series["attributes_json"])["survey_name"].startswith("Labor Force Statistics")
    # the observations carry calculations blocks; the values stage, the calculations are not staging's business
    assert parsed.observations.valid.num_rows == 12 and parsed.observations.rows_rejected == 0


@pytest.mark.parametrize(
    ("body", "check"),
    [
        (
            b'{"status":"REQUEST_SUCCEEDED","message":[],"Results":{"series":[{"seriesID":"OTHER","data":[]}]}}',
            "api.series",
        ),
        (b'{"status":"REQUEST_SUCCEEDED","message":[],"Results":{}}', "schema.api"),
        (
            b'{"status":"REQUEST_SUCCEEDED","Results":{"series":[{"seriesID":"LNS14000000","data":[{"year":"2024"}]}]}}',
            "schema.api",
        ),
        (b"[1, 2]", "schema.api"),
    ],
    ids=["series-absent", "no-series", "field-missing-everywhere", "not-an-object"],
)
def test_api_payloads_that_fail_whole(body, check):
    with pytest.raises(PayloadRejected) as caught:
        bls.parse_api_response(body, "LNS14000000", LINEAGE, "x.json", "k")
    assert caught.value.check == check


def test_both_datausa_shapes_give_the_same_columns():
    tesseract = datausa.parse_population(
        (FIXTURES / "tesseract_jsonrecords_acs_yg_total_population_1_Nation_Year.json").read_bytes(), LINEAGE, "p", "k"
    )
    legacy = datausa.parse_population(
        (FIXTURES / "api_data_drilldowns-Nation_measures-Population__2013-2023.json").read_bytes(), LINEAGE, "p", "k"
    )
    assert tesseract.valid.schema == legacy.valid.schema
    t = {r["year"]: r for r in tesseract.valid.to_pylist()}
    legacy_rows = {r["year"]: r for r in legacy.valid.to_pylist()}
    assert sorted(t) == [2013, 2014, 2015, 2016, 2017, 2018, 2019, 2021, 2022, 2023]  # no ACS 1-year for 2020
    assert sorted(legacy_rows) == list(range(2013, 2024))
    assert t[2013]["population"] == 316_128_839 and t[2013]["vintage"] == "ACS 1-year Estimate"
    assert legacy_rows[2013]["population"] == 311_536_594 and legacy_rows[2013]["vintage"] == "ACS 5-year Estimate"
    assert {r["geography_id"] for r in [*t.values(), *legacy_rows.values()]} == {"01000US"}
    assert {t[2013]["source_shape"], legacy_rows[2013]["source_shape"]} == {"tesseract", "legacy"}


def test_datausa_bad_rows_and_unknown_shapes():
    document = json.loads((FIXTURES / "tesseract_jsonrecords_acs_yg_total_population_1_Nation_Year.json").read_bytes())
    document["data"][0]["Population"] = 316128839.5
    document["data"][1]["Population"] = "many"
    parsed = datausa.parse_population(json.dumps(document).encode(), LINEAGE, "p", "k")
    assert parsed.valid.num_rows == 8
    assert parsed.rejected.column("_reason").to_pylist() == [
        "population '316128839.5' is not a whole, non-negative number",
        "population 'many' is not numeric",
    ]
    with pytest.raises(PayloadRejected, match="not a DataUSA response"):
        datausa.parse_population(b'{"rows": []}', LINEAGE, "p", "k")
