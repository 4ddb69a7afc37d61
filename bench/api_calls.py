"""BLS API calls of a real extractor run: 68 catalog series through the local runtime, counted by the replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from datalake.catalog import load_catalog
from datalake.contracts import Source

ROOT = Path(__file__).resolve().parent.parent
# A stand-in registration key: the replay accepts any key and applies the keyed limits (50 series, 20 years).
BENCH_KEY_VALUE = "bench-registration-key-0001"


def count_api_calls(series_count: int, with_key: bool) -> int:
    """Run the pipeline's extract stage over ``series_count`` catalog series; return the BLS API POSTs served."""
    series = [e.dataset for e in load_catalog().by_source(Source.BLS_API)][:series_count]
    if len(series) != series_count:
        raise ValueError(f"the catalog has only {len(series)} BLS API series")
    env = {k: v for k, v in os.environ.items() if k != "BLS_API_KEY"}
    if with_key:
        env["BENCH_BLS_KEY"] = BENCH_KEY_VALUE
    with tempfile.TemporaryDirectory(prefix="odp-bench-api-") as lake:
        args = [sys.executable, "-m", "localrun", "--lake-dir", lake, "--bls-key-env", "BENCH_BLS_KEY"]
        for series_id in series:
            args += ["--dataset", series_id]
        out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"local run failed: {out.stderr[-1500:]}")
        record = json.loads(next((Path(lake) / "_local" / "runs").glob("*.json")).read_text())
    return int(record["replay_requests"]["bls_api"])
