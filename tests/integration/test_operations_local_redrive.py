"""`make redrive QUEUE=ExtractDLQ` on the local runtime, through the CLI: a dataset that failed in one run is kept in
ExtractDLQ, moved back by the redrive run, processed, and its run's summary is updated."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from localrun.redrive import DEAD_LETTERS_FILE
from localrun.template import ROOT
from tests.support.local_run import run_local

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_dead_lettered_dataset_is_redriven_processed_and_its_run_summary_updated(tmp_path):
    # GIVEN a replay without the DataUSA recording: the extractor dead-letters datausa/population
    replay = tmp_path / "replay"
    shutil.copytree(ROOT / "data" / "replay", replay)
    for recording in (replay / "datausa").iterdir():
        recording.unlink()
    lake = tmp_path / "lake"
    first = run_local(lake, "--source", "datausa", "--replay-dir", str(replay)).output
    run_id = re.search(r"^   run (\S+): 1 extract requests sent$", first, re.M).group(1)
    assert "   ExtractDLQ: 1 message(s)\n     - datausa/population: DataUSA population does not exist" in first
    assert re.search(rf"^RUN {run_id} \(manual\)\n(.*\n)*?  failed             1\n", first, re.M)
    [kept] = [json.loads(line) for line in (lake / "_local" / DEAD_LETTERS_FILE).read_text().splitlines()]
    assert kept["queue"] == "ExtractDLQ" and json.loads(kept["body"])["dataset"] == "population"

    # WHEN the source is back (the bundled replay) and ExtractDLQ is redriven
    second = run_local(lake, "--redrive", "ExtractDLQ").output

    # THEN the request went back to ExtractQueue, was extracted, staged and modelled, and the run's summary updated
    assert "dead letters kept from earlier runs: ExtractDLQ=1" in second
    assert "== redrive: 1 message(s) moved from ExtractDLQ back to ExtractQueue" in second
    assert "   dead-letter queues: empty" in second
    summary = re.search(rf"^RUN {run_id} \(manual\): updated summary \(late outcomes\)\n(.*\n)*?Links:", second, re.M)
    assert summary, second
    assert (
        "  staged             1\n  quarantined        0\n  held               0\n  failed             0\n"
        in summary.group(0)
    )
    assert list((lake / "staging" / "population").rglob("*.parquet"))
    assert (lake / "_local" / DEAD_LETTERS_FILE).read_text() == ""
