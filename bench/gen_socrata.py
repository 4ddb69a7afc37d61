"""A deterministic Socrata-shaped dataset: N rows of SODA JSON (an array of objects) plus its metadata.

The shape follows the Generalitat's social-services registers: text, numbers served as strings (as SODA does),
calendar dates, a point, and optional fields omitted when null (as SODA's JSON does), so a schema inferred from
the first rows would be wrong.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

COMARQUES = [
    "Barcelonès",
    "Alt Empordà",
    "Vallès Occidental",
    "Baix Llobregat",
    "Gironès",
    "Segrià",
    "Tarragonès",
    "Osona",
    "Maresme",
    "Val d'Aran",
    "Pallars Sobirà",
    "Ribera d'Ebre",
]
MUNICIPIS = [
    "Barcelona",
    "Figueres",
    "Sabadell",
    "Terrassa",
    "Girona",
    "Lleida",
    "Tarragona",
    "Vic",
    "Mataró",
    "Vielha e Mijaran",
    "Sort",
    "Móra d'Ebre",
    "L'Hospitalet de Llobregat",
]
TIPOLOGIES = [
    "Servei de centre de dia",
    "Residència",
    "Servei d'atenció domiciliària",
    "Llar residència",
    "Servei de teleassistència",
]

VIEWS = {
    "id": "bench-mark",
    "name": "Generated social-services register (benchmark)",
    "columns": [
        {"fieldName": "registre", "dataTypeName": "text", "name": "Registre"},
        {"fieldName": "nom", "dataTypeName": "text", "name": "Nom"},
        {"fieldName": "tipologia", "dataTypeName": "text", "name": "Tipologia"},
        {"fieldName": "inscripcio", "dataTypeName": "calendar_date", "name": "Data d'inscripció"},
        {"fieldName": "capacitat", "dataTypeName": "number", "name": "Capacitat"},
        {"fieldName": "adreca", "dataTypeName": "text", "name": "Adreça"},
        {"fieldName": "municipi", "dataTypeName": "text", "name": "Municipi"},
        {"fieldName": "cp", "dataTypeName": "text", "name": "Codi postal"},
        {"fieldName": "comarca", "dataTypeName": "text", "name": "Comarca"},
        {"fieldName": "telefon", "dataTypeName": "text", "name": "Telèfon"},
        {"fieldName": "entitat_titular", "dataTypeName": "text", "name": "Entitat titular"},
        {"fieldName": "qualificacio", "dataTypeName": "text", "name": "Qualificació"},
        {"fieldName": "localitzacio", "dataTypeName": "point", "name": "Localització"},
    ],
}


def row(i: int, rng: random.Random) -> dict:
    record = {
        "registre": f"S{i:08d}",
        "nom": f"Servei {rng.choice(TIPOLOGIES).lower()} {i}",
        "tipologia": rng.choice(TIPOLOGIES),
        "inscripcio": f"{rng.randint(1990, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T00:00:00.000",
        "adreca": f"Carrer {rng.randint(1, 400)}, {rng.randint(1, 200)}",
        "municipi": rng.choice(MUNICIPIS),
        "cp": f"{rng.randint(8001, 43999):05d}",
        "comarca": rng.choice(COMARQUES),
        "entitat_titular": f"Entitat {rng.randint(1, 50_000)}",
        "localitzacio": {
            "type": "Point",
            "coordinates": [round(rng.uniform(0.2, 3.3), 6), round(rng.uniform(40.5, 42.9), 6)],
        },
    }
    if rng.random() < 0.8:  # SODA JSON omits null fields
        record["capacitat"] = str(rng.randint(1, 300))
    if rng.random() < 0.6:
        record["telefon"] = f"9{rng.randint(10_000_000, 99_999_999)}"
    if rng.random() < 0.3:
        record["qualificacio"] = rng.choice(["Acreditat", "Autoritzat", "Provisional"])
    return record


def generate(path: Path, rows: int, seed: int = 20261121, ndjson_path: Path | None = None) -> int:
    """Write ``rows`` rows as a SODA JSON array (and optionally the same rows as NDJSON); returns bytes written."""
    rng = random.Random(seed)
    with (
        path.open("w", encoding="utf-8") as out,
        ndjson_path.open("w", encoding="utf-8") if ndjson_path else open("/dev/null", "w") as nd,
    ):  # noqa: SIM115
        out.write("[")
        for i in range(rows):
            text = json.dumps(row(i, rng), ensure_ascii=False, separators=(",", ":"))
            out.write(("," if i else "") + "\n" + text)
            nd.write(text + "\n")
        out.write("\n]\n")
    path.with_suffix(".views.json").write_text(json.dumps(VIEWS, ensure_ascii=False, indent=1))
    return path.stat().st_size
