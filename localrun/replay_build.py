"""Rebuild the bundled replay folder (data/replay) from the real recorded data in ../shared/data.

    python -m localrun.replay_build [--shared-data ../shared/data] [--replay-dir data/replay]

What it writes (data/replay/README.md records the provenance of each file):
- ``bls_api/*.json``: the real BLS API v2 recordings, byte for byte (the committer's wrapper of the ryansuhr
  response is left out: its inner response is already there, byte-identical);
- ``bls_api/derived_pr_series_from_bulk_AllData.json``: *derived*, the catalog's PR series converted from the
  bundled bulk ``bls_bulk/pr/pr.data.1.AllData`` into the v2 response shape, so they have data offline;
- ``datausa/population.json``: the real tesseract ``jsonrecords`` recording, byte for byte;
- ``socrata/{id}.json``: *converted*, each Catalunya SODA CSV export as SODA JSON (an array of objects; empty
  fields omitted, as SODA omits nulls; numbers as strings and points as GeoJSON, as SODA JSON has them), every
  row kept; ``socrata/{id}.views.json``: *derived* metadata (column field names and Socrata types inferred from
  the values).

The tests never run this: they use the committed files, so a clean clone without ../shared still works.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
from pathlib import Path
from typing import Any

from localrun.template import ROOT

REAL_BLS_API = [
    "ap_bad_end_year.json",
    "ap_cps-situation-2015-all_options.json",
    "ap_cps-situation-2015.json",
    "ap_sae-north_dakota-mining-2014-2015.json",
    "ap_sae-north_dakota-mining-2015-catalog.json",
    "ryansuhr_bls_api_v2_response_2024-12-13.json",
]
DATAUSA_TESSERACT = "tesseract_jsonrecords_acs_yg_total_population_1_Nation_Year.json"
SOCRATA_EXPORTS = {
    "9uvn-hv6j": "9uvn-hv6j_oficines_informacio_atencio_dones_SIAD.csv",
    "utrz-jf79": "utrz-jf79_serveis_atencio_integral_LGBTI.csv",
    "amca-cgrp": "amca-cgrp_entitats_de_dones.csv",
}
SOCRATA_NAMES = {
    "9uvn-hv6j": "Oficines d'informació i atenció a les dones (SIAD)",
    "utrz-jf79": "Serveis d'atenció integral LGBTI (SAI)",
    "amca-cgrp": "Entitats de dones",
}
DERIVED_PR = "derived_pr_series_from_bulk_AllData.json"

_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?$")
_POINT = re.compile(r"^POINT \((-?\d+(?:\.\d+)?) (-?\d+(?:\.\d+)?)\)$")


def _tsv(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [[cell.strip() for cell in line.split("\t")] for line in lines[1:] if line.strip()]


def derive_pr_recording(bulk_dir: Path, series_ids: list[str]) -> dict[str, Any]:
    """The v2 response BLS would give for these PR series over every year of ``pr.data.1.AllData``."""
    period_names = {row[0]: row[2] for row in _tsv(bulk_dir / "pr.period")}
    footnotes = {row[0]: row[1] for row in _tsv(bulk_dir / "pr.footnote")}
    wanted = set(series_ids)
    observations: dict[str, list[dict[str, Any]]] = {sid: [] for sid in series_ids}
    for series_id, year, period, value, *rest in _tsv(bulk_dir / "pr.data.1.AllData"):
        if series_id not in wanted:
            continue
        codes = [c for c in (rest[0] if rest else "").split(",") if c.strip()]
        observations[series_id].append(
            {
                "year": year,
                "period": period,
                "periodName": period_names.get(period, period),
                "value": value,
                "footnotes": [{"code": c, "text": footnotes.get(c, c)} for c in codes] or [{}],
            }
        )
    series = []
    for sid in series_ids:
        data = sorted(observations[sid], key=lambda o: (int(o["year"]), o["period"]), reverse=True)
        if data:
            series.append({"seriesID": sid, "data": data})
    return {"status": "REQUEST_SUCCEEDED", "responseTime": 0, "message": [], "Results": {"series": series}}


def infer_socrata_type(values: list[str]) -> str:
    present = [v for v in values if v != ""]
    if present and all(_POINT.match(v) for v in present):
        return "point"
    if present and all(_NUMBER.match(v) for v in present):
        return "number"
    return "text"


def convert_socrata_csv(path: Path) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """SODA CSV export -> (SODA JSON rows, [(fieldName, dataTypeName)])."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        fields = list(reader.fieldnames or [])
    types = {name: infer_socrata_type([row[name] for row in rows]) for name in fields}
    converted = []
    for row in rows:
        item: dict[str, Any] = {}
        for name in fields:
            value = row[name]
            if value == "":
                continue  # SODA JSON omits null fields
            if types[name] == "point":
                match = _POINT.match(value)
                if match is None:
                    raise ValueError(f"{path.name}: {name} = {value!r} is not a WKT point")
                item[name] = {"type": "Point", "coordinates": [float(match.group(1)), float(match.group(2))]}
            else:
                item[name] = value  # SODA JSON carries numbers as strings
        converted.append(item)
    return converted, [(name, types[name]) for name in fields]


def socrata_views(dataset: str, columns: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": dataset,
        "name": SOCRATA_NAMES.get(dataset, dataset),
        "description": (
            "Derived for the replay (not a recording of /api/views): column field names from the SODA CSV export, "
            "Socrata types inferred from the values."
        ),
        "columns": [
            {"id": i + 1, "name": name, "fieldName": name, "dataTypeName": kind, "position": i + 1}
            for i, (name, kind) in enumerate(columns)
        ],
    }


def build(shared_data: Path, replay_dir: Path) -> list[str]:
    written = []
    (replay_dir / "bls_api").mkdir(parents=True, exist_ok=True)
    for name in REAL_BLS_API:
        shutil.copyfile(shared_data / "bls_api" / name, replay_dir / "bls_api" / name)
        written.append(f"bls_api/{name}")

    from datalake.catalog import load_catalog
    from datalake.contracts import Source

    pr_series = [e.dataset for e in load_catalog().by_source(Source.BLS_API) if e.dataset.startswith("PRS")]
    recording = derive_pr_recording(replay_dir / "bls_bulk" / "pr", pr_series)
    (replay_dir / "bls_api" / DERIVED_PR).write_text(json.dumps(recording, separators=(",", ":")) + "\n")
    written.append(f"bls_api/{DERIVED_PR}")

    (replay_dir / "datausa").mkdir(exist_ok=True)
    shutil.copyfile(shared_data / "datausa" / DATAUSA_TESSERACT, replay_dir / "datausa" / "population.json")
    written.append("datausa/population.json")

    (replay_dir / "socrata").mkdir(exist_ok=True)
    for dataset, export in SOCRATA_EXPORTS.items():
        rows, columns = convert_socrata_csv(shared_data / "catalunya" / export)
        (replay_dir / "socrata" / f"{dataset}.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
        (replay_dir / "socrata" / f"{dataset}.views.json").write_text(
            json.dumps(socrata_views(dataset, columns), ensure_ascii=False, indent=1) + "\n"
        )
        written += [f"socrata/{dataset}.json", f"socrata/{dataset}.views.json"]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localrun.replay_build", description=__doc__)
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--replay-dir", type=Path, default=ROOT / "data" / "replay")
    args = parser.parse_args(argv)
    for path in build(args.shared_data, args.replay_dir):
        print(path)
    return 0


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(ROOT / "shared"))
    raise SystemExit(main())
