"""The local run (`make run`, a subprocess, offline) stages the real BLS pr releases with exact values.

Over the bulk source only, for speed: the 2025-02 release (``--replay-dir``), then the bundled 2026-08 one, then
2025-02 again. The expected values are parsed from the raw files here, independently of the transformer.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from localrun.template import ROOT
from tests.support.local_run import run_local

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RELEASE_2025 = ROOT / "tests" / "fixtures" / "replay_pr_2025-02"
PR_2026 = ROOT / "data" / "replay" / "bls_bulk" / "pr"
PR_2025 = RELEASE_2025 / "bls_bulk" / "pr"
REVISED = ("PRS30006032", 1995, "Q03")  # -0.1 in 2025-02, 0.0 in 2026-08
BULK = Path("staging/bls_observation/source_kind=bulk/survey=pr")


def raw_file(path: Path) -> dict[tuple[str, int, str], tuple[float | None, str | None]]:
    found = {}
    with path.open(newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        next(reader)
        for series_id, year, period, value, footnotes in reader:
            text = value.strip()
            found[(series_id.strip(), int(year), period.strip())] = (
                None if text == "-" else float(text),
                footnotes.strip() or None,
            )
    return found


def staged(lake: Path, source_file: str) -> dict[tuple[str, int, str], tuple[float | None, str | None]]:
    [path] = sorted((lake / BULK).glob(f"part-{source_file}-*.parquet"))
    rows = pq.read_table(path).to_pylist()
    found = {(r["series_id"], r["year"], r["period"]): (r["value"], r["footnote_codes"]) for r in rows}
    assert len(found) == len(rows)
    return found


def test_the_local_run_stages_each_pr_release_with_exact_values(tmp_path):
    lake = tmp_path / "lake"
    old, new = raw_file(PR_2025 / "pr.data.0.Current"), raw_file(PR_2026 / "pr.data.0.Current")

    # 1. the 2025-02 release
    run_local(lake, "--source", "bls_bulk", "--replay-dir", str(RELEASE_2025))
    assert staged(lake, "pr.data.0.Current") == old
    assert len(staged(lake, "pr.data.1.AllData")) == 75_308

    # 2. the bundled 2026-08 release: every one of its 38,412 rows, exactly
    run_local(lake, "--source", "bls_bulk")
    current = staged(lake, "pr.data.0.Current")
    assert len(current) == 38_412
    assert current == new
    assert current[REVISED] == (0.0, None)
    assert len(staged(lake, "pr.data.1.AllData")) == 77_069
    series = pq.read_table(next((lake / "staging/bls_series/survey=pr").glob("part-bulk-*.parquet")))
    assert series.num_rows == 282

    # 3. 2025-02 again: a newer full snapshot, so its values win and the quarters it lacks leave current staging
    # (1,761 of 38,412 rows, 4.6%: within what the plausibility guard accepts), kept in the retired-rows record
    run_local(lake, "--source", "bls_bulk", "--replay-dir", str(RELEASE_2025))
    current = staged(lake, "pr.data.0.Current")
    assert current[REVISED] == (-0.1, None)
    assert current == old
    retired = pq.read_table(lake / "staging/bls_observation_retired", partitioning=None).to_pylist()
    assert {(r["series_id"], r["year"], r["period"]) for r in retired} >= new.keys() - old.keys()
    assert not list((lake / "quarantine").glob("**/*"))  # real releases: nothing rejected
