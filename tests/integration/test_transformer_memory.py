"""Bounded memory: a 1,000,000-row Socrata-shaped landing stages within a 512 MB Lambda.

Peak RSS is measured in a fresh process running the transformer's own staging code path
(``bench.staging_entry``), as the kernel's high-water mark of that process's memory (``VmHWM``). Not
``ru_maxrss``: Linux carries a forked child's pre-exec high-water mark (here, pytest's own size) into it. This test
asserts the bound, not a duration.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_MB = 512
ROWS = 1_000_000
VIEWS = {
    "id": "bnch-0001",
    "columns": [
        {"fieldName": "registre", "dataTypeName": "text"},
        {"fieldName": "nom", "dataTypeName": "text"},
        {"fieldName": "tipologia", "dataTypeName": "text"},
        {"fieldName": "inscripcio", "dataTypeName": "calendar_date"},
        {"fieldName": "capacitat", "dataTypeName": "number"},
        {"fieldName": "adreca", "dataTypeName": "text"},
        {"fieldName": "municipi", "dataTypeName": "text"},
        {"fieldName": "cp", "dataTypeName": "text"},
        {"fieldName": "comarca", "dataTypeName": "text"},
        {"fieldName": "telefon", "dataTypeName": "text"},
        {"fieldName": "entitat_titular", "dataTypeName": "text"},
        {"fieldName": "qualificacio", "dataTypeName": "text"},
        {"fieldName": "localitzacio", "dataTypeName": "point"},
    ],
}
COMARQUES = ["Barcelonès", "Vallès Occidental", "Baix Llobregat", "Val d'Aran", "Pallars Jussà", "Osona"]
MUNICIPIS = ["Barcelona", "L'Hospitalet de Llobregat", "Sabadell", "Vielha e Mijaran", "Tremp", "Vic", "Móra d'Ebre"]


def write_socrata_rows(path: Path, rows: int) -> None:
    """SODA-style JSON (``[{..}\\n,{..}]``): numbers as strings, a GeoJSON point, null fields omitted."""
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        for i in range(rows):
            optional = ""
            if i % 5:
                optional += f',"capacitat":"{i % 300 + 1}"'
            if i % 3:
                optional += f',"telefon":"9{10_000_000 + i % 89_999_999}"'
            if i % 7 == 0:
                optional += ',"qualificacio":"Acreditat"'
            out.write(
                ("\n," if i else "")
                + f'{{"registre":"S{i:08d}","nom":"Servei de centre de dia {i}","tipologia":"Residència",'
                f'"inscripcio":"{1990 + i % 35}-{i % 12 + 1:02d}-{i % 28 + 1:02d}T00:00:00.000",'
                f'"adreca":"Carrer {i % 400}, {i % 200}","municipi":{json.dumps(MUNICIPIS[i % 7], ensure_ascii=False)},'
                f'"cp":"{8001 + i % 35_000:05d}","comarca":{json.dumps(COMARQUES[i % 6], ensure_ascii=False)},'
                f'"entitat_titular":"Entitat {i % 50_000}"{optional},'
                f'"localitzacio":{{"type":"Point","coordinates":[{0.2 + (i % 3000) / 1000:.6f},'
                f"{40.5 + (i % 2400) / 1000:.6f}]}}}}"
            )
        out.write("]\n")
    path.with_suffix(".views.json").write_text(json.dumps(VIEWS))


def test_a_million_socrata_rows_stage_within_a_512_mb_lambda(tmp_path):
    source = tmp_path / "socrata_1m.json"
    write_socrata_rows(source, ROWS)
    assert source.stat().st_size > 250 * 2**20  # the size the design's figures were measured on (~300 MB)
    probe = (
        "import json\n"
        "from pathlib import Path\n"
        "from bench.staging_entry import stage_file\n"
        f"result = stage_file('socrata', Path({str(source)!r}), Path({str(tmp_path / 'out')!r}))\n"
        "status = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "result['peak_rss_mb'] = int(status['VmHWM'].split()[0]) / 1024\n"
        "print(json.dumps(result))\n"
    )
    env_path = [str(ROOT / "shared"), str(ROOT / "services" / "transformer"), str(ROOT)]
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": ":".join(env_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    print(f"staged {result['rows']} rows in {result['seconds']:.2f}s, peak RSS {result['peak_rss_mb']:.0f} MB")
    assert result["status"] == "staged"
    assert (result["rows_in"], result["rows"], result["rows_quarantined"]) == (ROWS, ROWS, 0)
    assert result["peak_rss_mb"] < LAMBDA_MB
    [staged] = result["staged_keys"]
    import pyarrow.parquet as pq

    metadata = pq.read_metadata(tmp_path / "out" / "lake" / staged)
    assert metadata.num_rows == ROWS
    assert metadata.schema.to_arrow_schema().field("localitzacio_lat").type == "double"
