"""A bulk data file staged in pieces (series range by series range) gives what staging it whole gives.

The whole-file reference is computed here from the domain functions the transformer used before it staged in
pieces: parse the file at once, ``merge_latest`` with the group's rows, ``retire_missing``, then ``table_bytes``.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.unit.transformer.support import PR_2025, PR_2026, stage
from transformer import bls
from transformer.bulk_fast import fast_observations
from transformer.domain import Lineage, dense, merge_latest, retire_missing
from transformer.parquet_spool import table_bytes
from transformer.schemas import BLS_OBSERVATION

LINEAGE = Lineage(
    source="landing/bls_bulk/pr/pr.data.0.Current", ingested_at=datetime(2026, 11, 21, tzinfo=UTC), run_id="r"
)
CURRENT = (PR_2026 / "pr.data.0.Current").read_bytes()


def pieces_of(body: bytes, piece_bytes: int) -> list[bls.ObservationPiece]:
    return list(bls.iter_bulk_observations(io.BytesIO(body), "pr.data.0.Current", "pr", LINEAGE, "k", piece_bytes))


def test_every_piece_ends_where_a_series_ends_and_together_they_are_the_file():
    whole = bls.parse_bulk_observations(io.BytesIO(CURRENT), "pr.data.0.Current", "pr", LINEAGE, "k")
    pieces = pieces_of(CURRENT, 64 << 10)
    assert len(pieces) > 20
    rows = dense(pa.concat_tables([dense(p.parsed.valid) for p in pieces]))
    assert rows.equals(dense(whole.valid))
    for before, after in zip(pieces, pieces[1:], strict=False):
        assert before.last_series < after.first_series  # no series is split between two pieces


def test_a_piece_with_bad_rows_takes_the_exact_path_with_every_reason_and_record_position():
    lines = CURRENT.splitlines(keepends=True)
    bad = list(lines)
    bad[10] = b"PRS30006011      \t19x8\tQ01\t         1.9\t\r\n"  # a year that is no year
    bad[2000] = bad[2000].replace(b"\tQ0", b"\tZ0", 1)  # no period
    bad[30000] = bad[29999]  # a key twice
    bad.insert(20000, b"PRS85006092\t2020\tQ01\t1.0\t\textra\r\n")  # a malformed line (6 fields)
    body = b"".join(bad)
    whole = bls.parse_bulk_observations(io.BytesIO(body), "pr.data.0.Current", "pr", LINEAGE, "k")
    pieces = pieces_of(body, 64 << 10)

    rejected = pa.concat_tables([p.parsed.rejected for p in pieces])
    assert sorted(
        zip(rejected["_record"].to_pylist(), rejected["_reason"].to_pylist(), strict=True), key=str
    ) == sorted(zip(whole.rejected["_record"].to_pylist(), whole.rejected["_reason"].to_pylist(), strict=True), key=str)
    assert rejected.num_rows == 4
    assert dense(pa.concat_tables([dense(p.parsed.valid) for p in pieces])).equals(dense(whole.valid))


def test_the_fast_path_types_a_clean_piece_exactly_as_the_exact_path_does():
    header_end = CURRENT.index(b"\n") + 1
    body = CURRENT[header_end:]
    fast = fast_observations(body, bls.OBSERVATION_HEADER, "pr", "pr.data.0.Current", LINEAGE)
    assert fast is not None
    parsed, first, last = fast
    exact = bls.parse_bulk_observations(io.BytesIO(CURRENT), "pr.data.0.Current", "pr", LINEAGE, "k")
    assert dense(parsed.valid).equals(dense(exact.valid))
    assert (first, last) == (exact.valid["series_id"][0].as_py(), exact.valid["series_id"][-1].as_py())
    # AND written, the dictionaries give the bytes the plain text gives
    assert table_bytes(parsed.valid, BLS_OBSERVATION.plain_columns) == table_bytes(
        exact.valid, BLS_OBSERVATION.plain_columns
    )


def test_a_file_whose_series_come_back_is_not_staged_in_pieces():
    lines = CURRENT.splitlines(keepends=True)
    body = b"".join([lines[0], *lines[30000:], *lines[1:30000]])  # the file's halves swapped
    with pytest.raises(bls.NotGroupedBySeries):
        pieces_of(body, 64 << 10)


def staged_group(aws, survey: str, name: str) -> tuple[str, bytes]:
    [key] = [k for k in aws.keys(f"staging/bls_observation/source_kind=bulk/survey={survey}/") if f"part-{name}-" in k]
    return key, aws.get(key)


@pytest.mark.parametrize("piece_bytes", [32 << 10, 64 << 20])
def test_a_release_staged_in_pieces_over_the_last_one_equals_the_file_merged_whole(aws, piece_bytes):
    # GIVEN the 2025 release staged, then the 2026 release (revisions, new quarters, and a series dropped)
    old = (PR_2025 / "pr.data.0.Current").read_bytes()
    new_lines = CURRENT.splitlines(keepends=True)
    new = b"".join(line for line in new_lines if not line.startswith(b"PRS30006011 "))
    stage(aws, aws.landings.bulk_sync("pr", {"pr.data.0.Current": old}), bulk_piece_bytes=piece_bytes)
    old_key, old_bytes = staged_group(aws, "pr", "pr.data.0.Current")
    landing = aws.landings.bulk_sync("pr", {"pr.data.0.Current": new}, moment=datetime(2026, 11, 22, 8, tzinfo=UTC))
    outcome = stage(aws, landing, bulk_piece_bytes=piece_bytes)

    # THEN the new file holds what the whole-file merge gives, byte for byte
    key, body = staged_group(aws, "pr", "pr.data.0.Current")
    staged = pq.read_table(io.BytesIO(body))
    previous = pq.read_table(io.BytesIO(old_bytes))
    lineage = Lineage(
        source=staged["_source"][0].as_py(),
        ingested_at=staged["_ingested_at"][0].as_py(),
        run_id=staged["_run_id"][0].as_py(),
    )
    parsed = bls.parse_bulk_observations(io.BytesIO(new), "pr.data.0.Current", "pr", lineage, "k")
    merged = merge_latest(previous, parsed.valid, BLS_OBSERVATION)
    current, retired = retire_missing(merged.table, parsed, BLS_OBSERVATION)
    assert body == table_bytes(current, BLS_OBSERVATION.plain_columns)
    # AND the counts are the whole merge's: the dropped series retired, the revisions counted
    counts = outcome["table_counts"]["bls_observation"]
    assert (counts["rows_written"], counts["rows_new"], counts["rows_revised"], counts["rows_retired"]) == (
        merged.rows_written,
        merged.rows_new,
        merged.rows_revised,
        retired.num_rows,
    )
    assert retired.num_rows > 0 and set(retired["series_id"].to_pylist()) == {"PRS30006011"}
    [retired_key] = aws.keys("staging/bls_observation_retired/")
    kept = pq.read_table(io.BytesIO(aws.get(retired_key)))
    assert kept.drop_columns(["_retired_at", "_retired_by_run"]).equals(dense(retired))
