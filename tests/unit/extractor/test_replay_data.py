"""The bundled replay folder holds what its README says, and the derived files agree with their sources."""

from __future__ import annotations

import json

from datalake.catalog import load_catalog
from datalake.contracts import Source
from localrun.replay import index_bls_recordings
from tests.unit.extractor.support import REPLAY


def bulk_rows(name: str) -> dict[tuple[str, str, str], tuple[str, str]]:
    lines = (REPLAY / "bls_bulk" / "pr" / name).read_text().splitlines()[1:]
    rows = {}
    for line in lines:
        series_id, year, period, value, footnotes = (cell.strip() for cell in line.split("\t"))
        rows[(series_id, year, period)] = (value, footnotes)
    return rows


def test_the_derived_pr_recording_is_exactly_the_bulk_observations():
    recording = json.loads((REPLAY / "bls_api" / "derived_pr_series_from_bulk_AllData.json").read_bytes())
    catalog_pr = sorted(e.dataset for e in load_catalog().by_source(Source.BLS_API) if e.dataset.startswith("PRS"))
    series = {s["seriesID"]: s["data"] for s in recording["Results"]["series"]}
    assert sorted(series) == catalog_pr
    rows = bulk_rows("pr.data.1.AllData")
    derived = {
        (sid, o["year"], o["period"]): (o["value"], ",".join(f["code"] for f in o["footnotes"] if f))
        for sid, data in series.items()
        for o in data
    }
    assert derived == {k: v for k, v in rows.items() if k[0] in series}
    assert derived[("PRS30006032", "2025", "Q01")] == ("-0.6", "")


def test_the_recordings_index_holds_the_catalog_series_they_record():
    index = index_bls_recordings((REPLAY / "bls_api").glob("*.json"))
    for series_id in ("LNS14000000", "CES0000000001", "SMS38000001000000001", "PRS30006032"):
        assert index[series_id].observations, series_id
    assert not any(entry.does_not_exist for entry in index.values())


def test_socrata_conversions_keep_every_row_and_omit_empty_fields():
    expected = {
        "9uvn-hv6j": 134,
        "utrz-jf79": 62,
        "amca-cgrp": 1000,
        "ivft-vegh": 6300,
        "b4rr-d25b": 1894,
        "9aju-tpwc": 947,
        "8idm-becu": 49797,
    }
    for dataset, count in expected.items():
        rows = json.loads((REPLAY / "socrata" / f"{dataset}.json").read_bytes())
        views = json.loads((REPLAY / "socrata" / f"{dataset}.views.json").read_bytes())
        assert len(rows) == count
        fields = [c["fieldName"] for c in views["columns"]]
        assert all(set(row) <= set(fields) for row in rows)
        assert not [v for row in rows for v in row.values() if v in ("", None)]
    socrata = {e.dataset for e in load_catalog().by_source(Source.SOCRATA)}
    assert socrata == set(expected)  # every Socrata dataset of the catalog has a recording
