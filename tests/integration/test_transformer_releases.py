"""Real BLS pr releases through the transformer (moto in-process): exact values, revisions, history, duplicates.

Expected values are parsed again from the raw files here with the csv module, independently of the transformer.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime

import pyarrow.compute as pc
import pytest

from tests.unit.transformer.landing_fixtures import commit_all
from tests.unit.transformer.support import (
    PR_2025,
    PR_2026,
    api_response,
    observation,
    stage,
    transformer_aws,
)

pytestmark = pytest.mark.integration

T1 = datetime(2025, 2, 14, 8, 0, tzinfo=UTC)
T2 = datetime(2026, 8, 7, 8, 0, tzinfo=UTC)
T3 = datetime(2026, 8, 8, 8, 0, tzinfo=UTC)
RUN = {T1: "20250214T080000Z-00000001", T2: "20260807T080000Z-00000002", T3: "20260808T080000Z-00000003"}

Key = tuple[str, int, str]


def raw_file(path) -> dict[Key, tuple[float | None, str | None]]:
    """An independent reading of a bulk data file: stripped cells, '-' as no value, blank footnote as none."""
    found: dict[Key, tuple[float | None, str | None]] = {}
    with path.open(newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = [c.strip() for c in next(reader)]
        assert header == ["series_id", "year", "period", "value", "footnote_codes"]
        for series_id, year, period, value, footnotes in reader:
            text = value.strip()
            found[(series_id.strip(), int(year), period.strip())] = (
                None if text == "-" else float(text),
                footnotes.strip() or None,
            )
    return found


def staged_file(aws, source_file: str) -> dict[Key, tuple[float | None, str | None]]:
    table = aws.staging("bls_observation")
    table = table.filter(pc.equal(table["source_file"], source_file))
    rows = table.select(["series_id", "year", "period", "value", "footnote_codes"]).to_pylist()
    staged = {(r["series_id"], r["year"], r["period"]): (r["value"], r["footnote_codes"]) for r in rows}
    assert len(staged) == len(rows), "a natural key is staged twice"
    return staged


@pytest.fixture
def aws():
    with transformer_aws() as kit:
        yield kit


def release(aws, folder, moment):
    return aws.landings.pr_release(folder, moment=moment, run_id=RUN[moment])


def test_the_real_pr_current_stages_every_row_with_exact_values(aws):
    # GIVEN the 2026-08 release landed by a mirror sync
    key = release(aws, PR_2026, T2)

    # WHEN it is staged
    outcome = stage(aws, key)

    # THEN every one of the 38,412 rows is staged with exactly the file's value and footnote
    expected = raw_file(PR_2026 / "pr.data.0.Current")
    assert len(expected) == 38_412
    assert staged_file(aws, "pr.data.0.Current") == expected
    assert outcome["counts"]["rows_quarantined"] == 0
    assert outcome["tables"][0]["rows_written"] == 38_412  # bls_observation
    # AND the lineage points at the exact mirrored version, with the manifest's time and run
    table = aws.staging("bls_observation")
    assert set(table["_run_id"].to_pylist()) == {RUN[T2]}
    assert set(table["_ingested_at"].to_pylist()) == {T2}
    [source] = set(table["_source"].to_pylist())
    version = aws.s3.head_object(Bucket=aws.bucket, Key="landing/bls_bulk/pr/pr.data.0.Current")["VersionId"]
    assert source == f"landing/bls_bulk/pr/pr.data.0.Current?versionId={version}"
    # AND the series are decoded with the mapping files
    series = {r["series_id"]: r for r in aws.staging("bls_series").to_pylist()}
    assert len(series) == 282
    prs = series["PRS30006032"]
    assert (prs["sector_name"], prs["measure_text"], prs["class_text"], prs["duration_text"], prs["seasonal_text"]) == (
        "Manufacturing",
        "Hours worked",
        "All workers",
        "% Change from previous quarter",
        "Seasonal Adjusted",
    )
    assert (prs["begin_year"], prs["end_year"], prs["end_period"]) == (1987, 2026, "Q02")


def test_release_2025_then_2026_then_2025_again_ends_with_the_right_values_each_time(aws):
    old, new = raw_file(PR_2025 / "pr.data.0.Current"), raw_file(PR_2026 / "pr.data.0.Current")
    revised_cell, footnoted_cell = ("PRS30006032", 1995, "Q03"), ("PRS30006032", 2024, "Q03")
    assert old[revised_cell] == (-0.1, None) and new[revised_cell] == (0.0, None)
    assert old[footnoted_cell] == (-1.2, "R") and new[footnoted_cell] == (-1.8, None)

    # 1. the 2025-02 release
    first_key = release(aws, PR_2025, T1)
    stage(aws, first_key)
    staged = staged_file(aws, "pr.data.0.Current")
    assert staged == old
    assert staged[revised_cell] == (-0.1, None) and staged[footnoted_cell] == (-1.2, "R")

    # 2. the 2026-08 release: new quarters added, revised values updated, and nothing else changes
    outcome = stage(aws, release(aws, PR_2026, T2))
    staged = staged_file(aws, "pr.data.0.Current")
    assert staged == new
    assert staged[revised_cell] == (0.0, None) and staged[footnoted_cell] == (-1.8, None)
    observations = outcome["tables"][0]
    assert observations["table"] == "bls_observation" and observations["partitions"] == ["source_kind=bulk/survey=pr"]
    counts = outcome["table_counts"]["bls_observation"]
    assert counts["rows_new"] == len(new.keys() - old.keys()) == 1_761
    assert counts["rows_revised"] == sum(1 for k in old if new[k] != old[k]) == 15_999
    assert counts["rows_written"] == 38_412  # every row of the new release now carries its lineage

    # 3a. a late redelivery of the 2025-02 landing changes nothing: the newer ingestion wins
    before = aws.snapshot("staging/")
    stage(aws, first_key)
    assert aws.snapshot("staging/") == before
    assert staged_file(aws, "pr.data.0.Current")[revised_cell] == (0.0, None)

    # 3b. the mirror going back to the 2025-02 files is a new ingestion of a full snapshot: its values win again,
    # and the quarters it no longer holds leave current staging for the retired-rows record (history kept there)
    outcome = stage(aws, release(aws, PR_2025, T3))
    staged = staged_file(aws, "pr.data.0.Current")
    assert staged[revised_cell] == (-0.1, None) and staged[footnoted_cell] == (-1.2, "R")
    assert staged == old
    gone = new.keys() - old.keys()
    assert outcome["table_counts"]["bls_observation"]["rows_retired"] == len(gone) == 1_761
    [retired_key] = aws.keys("staging/bls_observation_retired/source_kind=bulk/survey=pr/")
    retired = aws.parquet(retired_key).to_pylist()
    assert {(r["series_id"], r["year"], r["period"]): (r["value"], r["footnote_codes"]) for r in retired} == {
        k: new[k] for k in gone
    }
    assert {r["_retired_by_run"] for r in retired} == {RUN[T3]}


def test_a_revision_release_updates_the_revised_values_and_nothing_else(aws):
    # GIVEN the 2026-08 file, and a revision of it that revises three values (flagged R) and adds one quarter
    current = (PR_2026 / "pr.data.0.Current").read_bytes()
    lines = current.split(b"\r\n")
    revised = {1: b"        9.9\tR", 500: b"       -3.3\tR", 38_000: b"      123.4\tR"}
    revision = list(lines)
    for index, tail in revised.items():
        revision[index] = b"\t".join(lines[index].split(b"\t")[:3]) + b"\t" + tail
    revision.insert(-1, b"PRS30006011      \t2026\tQ03\t         0.7\t")
    stage(aws, aws.landings.bulk_sync("pr", {"pr.data.0.Current": current}, moment=T1, run_id=RUN[T1]))
    before = staged_file(aws, "pr.data.0.Current")

    # WHEN the revision is staged
    outcome = stage(
        aws, aws.landings.bulk_sync("pr", {"pr.data.0.Current": b"\r\n".join(revision)}, moment=T2, run_id=RUN[T2])
    )

    # THEN exactly the three revised cells changed (value and R footnote), one row was added, nothing else moved
    after = staged_file(aws, "pr.data.0.Current")
    changed = {k for k in before if after[k] != before[k]}
    expected_changed = {
        (c[0].decode().strip(), int(c[1]), c[2].decode()) for c in (lines[i].split(b"\t") for i in revised)
    }
    assert changed == expected_changed
    assert {after[k][1] for k in changed} == {"R"}
    assert after.keys() - before.keys() == {("PRS30006011", 2026, "Q03")}
    counts = outcome["table_counts"]["bls_observation"]
    assert (counts["rows_revised"], counts["rows_new"]) == (3, 1)


def test_backfill_then_daily_window_keeps_every_older_year(aws):
    # GIVEN a 20-year backfill of a series (2005-2024), then the daily three-year window (2024-2026) a day later
    def months(first: int, last: int, bump: float = 0.0) -> list[dict]:
        return [
            observation(y, f"M{m:02d}", f"{4 + (y % 7) / 10 + m / 100 + bump:.2f}")
            for y in range(last, first - 1, -1)
            for m in range(12, 0, -1)
        ]

    backfill = api_response("LNS14000000", months(2005, 2024))
    window = months(2024, 2026)
    window[0] = observation(2026, "M12", "5.00", [{"code": "P", "text": "preliminary"}])
    revised_2024 = next(o for o in window if (o["year"], o["period"]) == ("2024", "M06"))
    revised_2024["value"] = "9.99"
    stage(aws, aws.landings.bls_api("LNS14000000", [backfill], moment=T1, run_id=RUN[T1]))
    before = {(r["year"], r["period"]): r["value"] for r in aws.staging("bls_observation").to_pylist()}
    assert len(before) == 240

    # WHEN the daily window is staged
    outcome = stage(
        aws,
        aws.landings.bls_api("LNS14000000", [api_response("LNS14000000", window)], moment=T2, run_id=RUN[T2]),
    )

    # THEN all twenty years are still there, the older years with their values untouched
    after = {(r["year"], r["period"]): r for r in aws.staging("bls_observation").to_pylist()}
    assert len(after) == 240 + 24
    assert {k: after[k]["value"] for k in before if k[0] < 2024} == {k: v for k, v in before.items() if k[0] < 2024}
    assert all(after[k]["_run_id"] == RUN[T1] for k in before if k[0] < 2024)
    # AND the window's years carry the window's values (the revised month included)
    assert after[(2024, "M06")]["value"] == 9.99 and after[(2024, "M06")]["_run_id"] == RUN[T2]
    assert after[(2026, "M12")]["footnote_codes"] == "P"
    assert (outcome["counts"]["rows_new"], outcome["counts"]["rows_revised"]) == (24, 1)
    # AND the series lives in one file of its survey's partition
    assert (
        aws.keys("staging/bls_observation/source_kind=api/survey=ln/")[0].split("/")[-1].startswith("part-LNS14000000-")
    )
    assert len(aws.keys("staging/bls_observation/")) == 1


def test_reprocessing_every_source_three_times_writes_identical_bytes_and_nothing_new(aws):
    # GIVEN one landing per source, staged once
    keys = commit_all(aws)
    for key in keys.values():
        stage(aws, key)
    first = aws.snapshot("staging/")
    versions = aws.versions("staging/")
    quarantine = aws.snapshot("quarantine/")

    # WHEN each landing is processed twice more (redeliveries whose idempotency record has expired)
    for _ in range(2):
        for key in keys.values():
            outcome = stage(aws, key)
            assert outcome["staged_keys"] == []  # nothing changed, nothing written
            assert all(t["partitions"] == [] for t in outcome["tables"])

    # THEN staging holds the same bytes, and no object version was added
    assert aws.snapshot("staging/") == first
    assert aws.versions("staging/") == versions
    assert aws.snapshot("quarantine/") == quarantine
    assert {k.split("/")[1] for k in first} == {"bls_observation", "bls_series", "population", "socrata_9uvn_hv6j"}


def test_a_stale_socrata_landing_does_not_replace_a_newer_snapshot(aws):
    from tests.unit.transformer.support import FIXTURES

    views = (FIXTURES / "9uvn-hv6j.views.json").read_bytes()
    rows = (FIXTURES / "9uvn-hv6j.json").read_bytes()
    newer = aws.landings.socrata("9uvn-hv6j", [rows], views, moment=T2, run_id=RUN[T2])
    first_row_only = b"[" + rows.strip()[1:].split(b"\n },", 1)[0] + b"\n }]"
    older = aws.landings.socrata("9uvn-hv6j", [first_row_only], views, moment=T1, run_id=RUN[T1])
    stage(aws, newer)
    snapshot = aws.snapshot("staging/")

    outcome = stage(aws, older)

    assert outcome["status"] == "stale"
    assert aws.snapshot("staging/") == snapshot
    assert aws.staging("socrata_9uvn_hv6j").num_rows == 134


@pytest.mark.parametrize("order", ["newer first", "older first"])
def test_the_newer_fetch_wins_whichever_landing_commits_last(aws, order):
    # GIVEN two overlapping runs: A fetched the 2025-02 release at T1 but committed its landing last (at T3);
    # B fetched the 2026-08 release at T2 and committed it in between
    landing_b = {"folder": PR_2026, "committed": T2, "fetched": T2, "run_id": RUN[T2]}
    landing_a = {"folder": PR_2025, "committed": T3, "fetched": T1, "run_id": RUN[T3]}
    first, second = (landing_b, landing_a) if order == "newer first" else (landing_a, landing_b)

    # WHEN both are staged, in either order
    stage(aws, release_fetched(aws, **first))
    stage(aws, release_fetched(aws, **second))

    # THEN staging holds B's release: the order is when the data was fetched, not when a landing committed
    assert staged_file(aws, "pr.data.0.Current") == raw_file(PR_2026 / "pr.data.0.Current")


def release_fetched(aws, folder, committed, fetched, run_id):
    return aws.landings.pr_release(folder, moment=committed, run_id=run_id, fetched_at=fetched)
