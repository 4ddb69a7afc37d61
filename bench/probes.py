"""Measurements that must each run in a fresh process: `python -m bench.probes <probe> [args...]`.

Each probe prints one JSON object: the seconds its work took, the process's peak RSS in MB, and its own figures.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "shared", *sorted((ROOT / "services").iterdir()), ROOT):
    sys.path.insert(0, str(path))

BATCH_BYTES = 8 << 20


def peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM). ru_maxrss is not used: on Linux it keeps the high-water mark
    of the forking parent from before exec, so a small probe launched by a big benchmark would look big."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def floor_tsv(source: str, target: str) -> dict[str, Any]:
    """Bare pyarrow: streaming CSV reader (tab-delimited) into a ParquetWriter, no cleaning at all."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rows = 0
    reader = pacsv.open_csv(
        source, read_options=pacsv.ReadOptions(block_size=BATCH_BYTES), parse_options=pacsv.ParseOptions(delimiter="\t")
    )
    with pq.ParquetWriter(target, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    return {"rows": rows}


def _data_files(source: str) -> list[Path]:
    """A bulk data file, or every ``*.data.*`` file of a survey's folder."""
    path = Path(source)
    return sorted(f for f in path.iterdir() if ".data." in f.name) if path.is_dir() else [path]


def floor_tsv_files(source: str, target: str) -> dict[str, Any]:
    """The floor of a whole survey: ``floor_tsv`` on each of its data files, one after the other."""
    rows = 0
    for n, path in enumerate(_data_files(source)):
        rows += floor_tsv(str(path), f"{target}.{n}.parquet")["rows"]
    return {"rows": rows}


def pandas_tsv_files(source: str, target: str) -> dict[str, Any]:
    """The naive baseline of a whole survey: ``pandas_tsv`` on each of its data files."""
    rows = 0
    for n, path in enumerate(_data_files(source)):
        rows += pandas_tsv(str(path), f"{target}.{n}.parquet")["rows"]
    return {"rows": rows}


def floor_ndjson(source: str, target: str) -> dict[str, Any]:
    """Bare pyarrow: streaming newline-delimited JSON reader into a ParquetWriter."""
    import pyarrow as pa
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    from bench.gen_socrata import VIEWS

    fields = [pa.field(c["fieldName"], pa.string()) for c in VIEWS["columns"] if c["dataTypeName"] != "point"]
    fields.append(pa.field("localitzacio", pa.struct([("type", pa.string()), ("coordinates", pa.list_(pa.float64()))])))
    options = pajson.ParseOptions(explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore")
    rows = 0
    reader = pajson.open_json(source, read_options=pajson.ReadOptions(block_size=BATCH_BYTES), parse_options=options)
    with pq.ParquetWriter(target, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    return {"rows": rows}


def pandas_tsv(source: str, target: str) -> dict[str, Any]:
    """The naive baseline: read_csv into a DataFrame, then to_parquet."""
    import pandas as pd

    frame = pd.read_csv(source, sep="\t")
    frame.to_parquet(target)
    return {"rows": len(frame)}


def pandas_json(source: str, target: str) -> dict[str, Any]:
    """The naive baseline: json.load, a DataFrame, then to_parquet."""
    import pandas as pd

    with open(source, encoding="utf-8") as fh:
        records = json.load(fh)
    frame = pd.DataFrame(records)
    frame.to_parquet(target)
    return {"rows": len(frame)}


def staging(kind: str, source: str, target_dir: str) -> dict[str, Any]:
    """The transformer's own staging path, the code Lambda runs (see bench.staging_entry)."""
    from bench.staging_entry import stage_file

    return stage_file(kind, Path(source), Path(target_dir))


def import_module(module: str) -> dict[str, Any]:
    """Time one cold import of a module (a handler, or the floor) in this fresh process."""
    import importlib

    from tests.env import TEST_ENV

    os.environ.update(TEST_ENV)
    started = time.perf_counter()
    importlib.import_module(module)
    return {"import_s": time.perf_counter() - started}


def import_after(base: str, module: str) -> dict[str, Any]:
    """Time a cold import of ``base`` (a floor), then of ``module`` (a handler) in the same fresh process.

    The handler's own import repeats the floor's (boto3, Powertools), which is then cached, so ``base_s +
    extra_s`` is the handler's cold import in this process, and its ratio to ``base_s`` is measured at one and the
    same moment of the machine's load.
    """
    import importlib

    from tests.env import TEST_ENV

    os.environ.update(TEST_ENV)
    started = time.perf_counter()
    importlib.import_module(base)
    base_s = time.perf_counter() - started
    started = time.perf_counter()
    importlib.import_module(module)
    return {"base_s": base_s, "extra_s": time.perf_counter() - started}


PROBES = {
    "floor_tsv": floor_tsv,
    "floor_tsv_files": floor_tsv_files,
    "pandas_tsv_files": pandas_tsv_files,
    "floor_ndjson": floor_ndjson,
    "pandas_tsv": pandas_tsv,
    "pandas_json": pandas_json,
    "staging": staging,
    "import": import_module,
    "import_after": import_after,
}


# Imported before the clock starts, so every case times its work alone (reading, converting, writing), not the
# interpreter loading the libraries it uses; cold start is measured separately, by the `import` probe.
PREIMPORTS = {
    "floor_tsv": ("pyarrow.csv", "pyarrow.parquet"),
    "floor_tsv_files": ("pyarrow.csv", "pyarrow.parquet"),
    "pandas_tsv_files": ("pandas", "pyarrow.parquet"),
    "floor_ndjson": ("pyarrow.json", "pyarrow.parquet", "bench.gen_socrata"),
    "pandas_tsv": ("pandas", "pyarrow.parquet"),
    "pandas_json": ("pandas", "pyarrow.parquet"),
    "staging": ("pyarrow.csv", "pyarrow.json", "pyarrow.parquet", "pyarrow.compute", "bench.staging_entry"),
}


def main(argv: list[str]) -> None:
    """``probe NAME [--warmup W] [--inner N] ARGS...``: W untimed runs, then the median of N timed ones."""
    import importlib
    import statistics

    name, *args = argv
    warmup = inner = None
    while args and args[0] in {"--warmup", "--inner"}:
        flag, value, *args = args
        if flag == "--warmup":
            warmup = int(value)
        else:
            inner = int(value)
    for module in PREIMPORTS.get(name, ()):
        importlib.import_module(module)
    for _ in range(warmup or 0):
        PROBES[name](*args)
    timings, result = [], {}
    for _ in range(inner or 1):
        started = time.perf_counter()
        result = PROBES[name](*args)
        timings.append(result.get("seconds", time.perf_counter() - started))
    result["seconds"] = statistics.median(timings)
    result["inner_runs_s"] = [round(s, 4) for s in timings]
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
