"""`make run` prints the run summary, with the counts of that very run: checked against the lake and the ledger.

The local pipeline runs as `make run` runs it (a subprocess, offline, on the bundled replay), over DataUSA only for
speed; the summary reaches the console through the local inbox that stands in for the alerts email.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from datalake.state import from_item
from tests.support.local_run import run_local

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run_id_of(output: str) -> str:
    return re.search(r"^   run (\S+): \d+ extract requests sent$", output, re.M).group(1)


def summary_of(output: str, run_id: str) -> str:
    """The run's summary, as printed from the alerts inbox."""
    match = re.search(rf"^RUN {re.escape(run_id)} .*?^Links:$", output, re.M | re.S)
    assert match, f"no summary of run {run_id} in the output:\n{output}"
    return match.group(0)


def section(summary: str, title: str) -> dict[str, str]:
    block = re.search(rf"^{title}.*?\n((?:  .*\n)+)", summary, re.M).group(1)
    return {m.group(1): m.group(2) for m in re.finditer(r"^  (\S+(?: outcome)?)\s+(\S+)", block, re.M)}


def ledger(lake: Path, run_id: str) -> list[dict[str, Any]]:
    items = [from_item(json.loads(line)) for line in (lake / "_local" / "state-table.jsonl").read_text().splitlines()]
    return [json.loads(i["event"]) for i in items if i["pk"] == f"RUN#{run_id}" and i["sk"].startswith("EVENT#")]


def parquet_rows(path: Path, run_id: str | None = None) -> int:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if run_id is None:
        return table.num_rows
    return sum(1 for value in table.column("_run_id").to_pylist() if value == run_id)


def test_the_local_run_prints_its_summary_with_the_counts_of_that_run(tmp_path):
    lake = tmp_path / "lake"

    # WHEN the pipeline runs on DataUSA for the first time
    first = run_local(lake, "--source", "datausa").output
    run_id = run_id_of(first)
    summary = summary_of(first, run_id)

    # THEN the summary's counts are the ledger's and the lake's
    events = ledger(lake, run_id)
    kinds = [e["event_type"] for e in events]
    counts = section(summary, "Datasets")
    assert counts == {
        "extracted": "1",
        "unchanged": "0",
        "staged": "1",
        "quarantined": "0",
        "held": "0",
        "failed": "0",
    }
    assert kinds.count("dataset.extracted") == 1 and kinds.count("dataset.staged") == 1
    [started] = [e for e in events if e["event_type"] == "run.started"]
    assert f"Datasets ({len(started['datasets'])} expected)" in summary

    rows = section(summary, "Rows by table")
    [staged] = [e for e in events if e["event_type"] == "dataset.staged"]
    [table] = staged["tables"]
    staging_rows = parquet_rows(lake / "staging" / table["table"], run_id)
    assert staging_rows > 0
    assert rows[f"staging/{table['table']}"] == f"{staging_rows:,}" == f"{table['rows_written']:,}"
    marts = [m for e in events if e["event_type"] == "marts.built" for m in e["marts"]]
    assert marts, "the modeler built nothing"
    for mart in marts:
        assert rows[f"marts/{mart['name']}"] == f"{parquet_rows(lake / mart['key']):,}", mart["name"]
    stages = section(summary, "Stage times")
    assert set(stages) == {"extract", "transform", "model", "total"}
    assert "== notifications (1), as the alerts email would show them" in first

    # AND every log line of the run, from the scheduler to the notifier, carries the run id as its correlation id
    log_path = Path(re.search(r"; logs: (\S+)$", first, re.M).group(1))
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    logged = [line for line in lines if "_aws" not in line]  # EMF metrics share the stream
    assert {line["service"] for line in logged} == {"scheduler", "extractor", "transformer", "modeler", "notifier"}
    assert {line.get("correlation_id") for line in logged} == {run_id}

    # WHEN it runs again over the same data, THEN that run's summary says nothing changed
    second = run_local(lake, "--source", "datausa").output
    run_2 = run_id_of(second)
    assert run_2 != run_id
    summary_2 = summary_of(second, run_2)
    assert section(summary_2, "Datasets") == {
        "extracted": "0",
        "unchanged": "1",
        "staged": "0",
        "quarantined": "0",
        "held": "0",
        "failed": "0",
    }
    assert "Rows by table\n  (nothing written)\n" in summary_2
    assert [e["event_type"] for e in ledger(lake, run_2)].count("dataset.unchanged") == 1
