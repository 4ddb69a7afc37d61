"""A whole local run with a BLS API key (``BLS_API_KEY=... make run``) never writes the key anywhere: not in the
console, not in any log line of any function, not in the lake (raw landings, manifests, Parquet, state, kept
messages, run records). The key is used (the keyed limits show in the logs), and a source fault on the API makes
the extractor log its failures and retries too, so the error paths are searched as well."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.local_run import run_local

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "5f3c1e9a7b2d4c6e8f0a1b3c5d7e9f21"  # made up, shaped like a real registration key (32 hex digits)
PLAN = {"name": "the API fails once", "source": [{"kind": "http_500", "endpoint": "bls_api", "attempts": 1}]}


def test_a_local_run_with_a_bls_key_writes_the_key_nowhere(tmp_path):
    lake = tmp_path / "lake"
    done = run_local(
        lake,
        "--dataset",
        "LNS14000000",
        "--dataset",
        "CES0000000001",
        "--dataset",
        "population",
        plan=PLAN,
        env={"BLS_API_KEY": KEY},
    )
    assert "BLS API key: stored in local SSM (SecureString)" in done.output

    # the key was used: the extractor fetched with the keyed limits, and retried the failed query
    logs = sorted((lake / "_local" / "logs").glob("*.jsonl"))
    lines = [json.loads(line) for path in logs for line in path.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("limits") == "50 series / 20 years" for line in lines)
    assert "http_500 on bls_api (clears after 1): 1 of 2 matching requests faulted" in done.output

    # AND it is nowhere: console, logs, or any file of the lake folder (text or binary)
    assert KEY not in done.output and KEY not in done.errors
    files = [p for p in lake.rglob("*") if p.is_file()]
    assert len(files) > 20 and any(p.suffix == ".parquet" for p in files)
    holding = [str(p.relative_to(lake)) for p in files if KEY.encode() in p.read_bytes()]
    assert holding == []
    assert not [p for p in files if KEY.upper().encode() in p.read_bytes()]
    assert Path(lake / "_local" / "state-table.jsonl").read_text().count(KEY) == 0
