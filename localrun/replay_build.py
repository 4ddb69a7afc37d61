"""Rebuild the bundled replay folder (data/replay) from the real recorded data in ../shared/data.

    python -m localrun.replay_build [--shared-data ../shared/data] [--replay-dir data/replay]

What it writes (data/replay/README.md records the provenance of each file):
- ``bls_api/*.json``: the real BLS API v2 recordings, byte for byte (the committer's wrapper of the ryansuhr
  response is left out: its inner response is already there, byte-identical);
- ``bls_api/derived_pr_series_from_bulk_AllData.json``: *derived*, the catalog's PR series converted from the
  bundled bulk ``bls_bulk/pr/pr.data.1.AllData`` into the v2 response shape, so they have data offline;
- ``datausa/population.json``: the real tesseract ``jsonrecords`` recording, byte for byte;
- ``socrata/{id}.json``: *converted*, each Catalunya CSV export as SODA JSON (an array of objects; empty
  fields omitted, as SODA omits nulls; numbers as strings, dates as floating timestamps and points as GeoJSON, as
  SODA JSON has them), every row kept; ``socrata/{id}.views.json``: *derived* metadata (column display names,
  field names and Socrata types).

Two kinds of CSV export exist. A SODA export (``/resource/{id}.csv``) is headed by the field names already. A
portal ``rows.csv`` export is headed by the *display* names (``Consum [kWh]``); its field names are the ones the
portal publishes for the dataset when they are known (``ivft-vegh``), otherwise derived from the display names by
Socrata's rule (``socrata_field_name``): lower case, every run of characters other than ``a-z`` and ``0-9``
becomes one ``_``, and leading or trailing ``_`` are dropped (``Consum [kWh]`` -> ``consum_kwh``,
``Homes. De 65 anys i més`` -> ``homes_de_65_anys_i_m_s``; the SODA exports' own ``adre_a`` for ``Adreça`` and
``tel_fon`` for ``Telèfon`` follow the same rule).

The tests never run this: they use the committed files, so a clean clone without ../shared still works.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class SocrataExport:
    """One Catalunya CSV export and how it becomes SODA JSON.

    ``field_names``: the portal's published field names, in column order, for a ``rows.csv`` export headed by
    display names (None: a SODA export, headed by field names; or derived by ``socrata_field_name``).
    ``types``: Socrata types by field name where the values alone would be read wrongly (a phone number is not a
    number; a date is a ``calendar_date``).
    """

    dataset: str
    file: str
    name: str
    display_header: bool = False
    field_names: tuple[str, ...] | None = None
    types: dict[str, str] = field(default_factory=dict)


SOCRATA_EXPORTS = (
    SocrataExport(
        "9uvn-hv6j",
        "9uvn-hv6j_oficines_informacio_atencio_dones_SIAD.csv",
        "Oficines d'informació i atenció a les dones (SIAD)",
    ),
    SocrataExport(
        "utrz-jf79", "utrz-jf79_serveis_atencio_integral_LGBTI.csv", "Serveis d'atenció integral LGBTI (SAI)"
    ),
    SocrataExport("amca-cgrp", "amca-cgrp_entitats_de_dones.csv", "Entitats de dones"),
    SocrataExport(
        "ivft-vegh",
        "ivft-vegh_registre_entitats_serveis_establiments_socials_20240515_rows.csv",
        "Registre d'entitats, serveis i establiments socials (serveis socials bàsics i especialitzats)",
        display_header=True,
        field_names=(
            "registre",
            "nom",
            "tipologia",
            "inscripcio",
            "capacitat",
            "adreca",
            "municipi",
            "districte",
            "cp",
            "comarca",
            "telefon",
            "entitat_titular",
            "qualificacio",
            "nif",
        ),
        types={"inscripcio": "calendar_date", "telefon": "text", "capacitat": "number", "districte": "text"},
    ),
    SocrataExport(
        "b4rr-d25b",
        "poblacio_municipi_rang_edat_sexe_b4rr-d25b_2019-2020_PEEVE.csv",
        "Població de Catalunya per municipi, rang d'edat i sexe",
        display_header=True,
        types={"codi": "text"},
    ),
    SocrataExport(
        "9aju-tpwc",
        "municipis_catalunya_geo_9aju-tpwc_2023_raulvillalba.csv",
        "Municipis de Catalunya: codis, comarca i coordenades",
        display_header=True,
        types={"codi": "text", "codi_comarca": "text"},
    ),
    SocrataExport(
        "8idm-becu",
        "consum_energia_electrica_municipis_sectors_8idm-becu_20250513_irie.csv",
        "Consum d'energia elèctrica per municipis i sectors de Catalunya",
        display_header=True,
        types={"cdmun": "text"},
    ),
)
DERIVED_PR = "derived_pr_series_from_bulk_AllData.json"

_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?$")
_POINT = re.compile(r"^POINT \((-?\d+(?:\.\d+)?) (-?\d+(?:\.\d+)?)\)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FIELD_SEPARATORS = re.compile(r"[^a-z0-9]+")


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


def socrata_field_name(display_name: str) -> str:
    """Socrata's field name for a column's display name: ``Consum [kWh]`` -> ``consum_kwh``.

    Lower case; every run of characters other than ``a-z`` and ``0-9`` (accented letters included) becomes one
    ``_``; leading and trailing ``_`` are dropped.

    Raises
    ------
    ValueError
        When nothing usable is left (a display name of punctuation only).
    """
    name = _FIELD_SEPARATORS.sub("_", display_name.lower()).strip("_")
    if not name:
        raise ValueError(f"display name {display_name!r} gives no field name")
    return name


def infer_socrata_type(values: list[str]) -> str:
    present = [v for v in values if v != ""]
    if present and all(_POINT.match(v) for v in present):
        return "point"
    if present and all(_NUMBER.match(v) for v in present):
        return "number"
    return "text"


def _soda_value(value: str, kind: str, where: str) -> Any:
    if kind == "point":
        match = _POINT.match(value)
        if match is None:
            raise ValueError(f"{where} = {value!r} is not a WKT point")
        return {"type": "Point", "coordinates": [float(match.group(1)), float(match.group(2))]}
    if kind == "calendar_date":
        if not _DATE.match(value):
            raise ValueError(f"{where} = {value!r} is not a date")
        return f"{value}T00:00:00.000"  # SODA JSON serves a calendar_date as a floating timestamp
    return value  # SODA JSON carries numbers (and everything else) as strings


def convert_socrata_csv(
    path: Path, export: SocrataExport | None = None
) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
    """CSV export -> (SODA JSON rows, [(display name, fieldName, dataTypeName)]).

    Raises
    ------
    ValueError
        When the published field names do not match the header's columns, two columns get one field name, or a
        value does not fit its declared type.
    """
    export = export or SocrataExport(dataset=path.stem, file=path.name, name=path.stem)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        records = list(reader)
    if export.field_names is not None:
        if len(export.field_names) != len(header):
            raise ValueError(f"{path.name}: {len(header)} columns, {len(export.field_names)} published field names")
        fields = list(export.field_names)
    elif export.display_header:
        fields = [socrata_field_name(name) for name in header]
    else:
        fields = list(header)
    if len(set(fields)) != len(fields):
        raise ValueError(f"{path.name}: two columns share a field name: {fields}")
    for number, record in enumerate(records, start=2):
        if len(record) != len(fields):
            raise ValueError(f"{path.name}: record {number} has {len(record)} fields, the header {len(fields)}")
    types = {
        name: export.types.get(name) or infer_socrata_type([r[i] for r in records]) for i, name in enumerate(fields)
    }
    converted = []
    for number, record in enumerate(records, start=2):
        item: dict[str, Any] = {}
        for name, value in zip(fields, record, strict=True):
            if value == "":
                continue  # SODA JSON omits null fields
            item[name] = _soda_value(value, types[name], f"{path.name} record {number}: {name}")
        converted.append(item)
    return converted, [(display, name, types[name]) for display, name in zip(header, fields, strict=True)]


def socrata_views(export: SocrataExport, columns: list[tuple[str, str, str]]) -> dict[str, Any]:
    if export.field_names:
        how = "display names from the portal's rows.csv header, field names as the portal publishes them; "
    elif export.display_header:
        how = "display names from the portal's rows.csv header, field names derived by Socrata's rule; "
    else:
        how = "column field names from the SODA CSV export, "
    declared = "" if not export.types else " (or declared where the values mislead)"
    return {
        "id": export.dataset,
        "name": export.name,
        "description": (
            f"Derived for the replay (not a recording of /api/views): {how}Socrata types inferred from the values"
            f"{declared}."
        ),
        "columns": [
            {"id": i + 1, "name": display, "fieldName": name, "dataTypeName": kind, "position": i + 1}
            for i, (display, name, kind) in enumerate(columns)
        ],
    }


def write_socrata_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """A JSON array, one row per line: the larger datasets stay readable in a diff and small on disk."""
    lines = [json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in rows]
    path.write_text("[\n" + ",\n".join(lines) + "\n]\n", encoding="utf-8")


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
    for export in SOCRATA_EXPORTS:
        rows, columns = convert_socrata_csv(shared_data / "catalunya" / export.file, export)
        rows_path = replay_dir / "socrata" / f"{export.dataset}.json"
        if export.display_header:
            write_socrata_rows(rows_path, rows)
        else:  # the first three recordings keep the layout they were committed with
            rows_path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
        (replay_dir / "socrata" / f"{export.dataset}.views.json").write_text(
            json.dumps(socrata_views(export, columns), ensure_ascii=False, indent=1) + "\n"
        )
        written += [f"socrata/{export.dataset}.json", f"socrata/{export.dataset}.views.json"]
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
