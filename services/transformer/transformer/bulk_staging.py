"""A bulk data file staged in pieces: series range by series range, merged with the group's current file.

A BLS bulk data file is a full snapshot of its staging group (``staging/bls_observation/source_kind=bulk/
survey={s}/part-{file}-{sha16}.parquet``). Staged whole, a 10-million-observation file needs several GB; staged
here, memory holds one piece of the file (``bls.BULK_PIECE_BYTES``) and the matching rows of the current file:

1. the landing object is read piece by piece, each piece cut at a series boundary (``bls.iter_bulk_observations``);
2. the group's current file(s), written sorted by the natural key, are read alongside, up to the piece's last series
   (``ExistingRows``);
3. each piece is merged with those rows as a whole file is (``merge_latest``, then ``retire_missing``: here in one
   step, ``replace_with_snapshot``), and written on: rows to the new staging file, retired keys to the retired-rows
   record, rejected rows to quarantine.

The new file replaces the group's file only when every piece is done (``StagingStore.put``), so a reader sees the
old file or the new one, never a mix. Its bytes equal the whole-file path's. A file whose rows are not grouped by
series (BLS's are) raises ``bls.NotGroupedBySeries`` before anything is written, and is staged whole.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transformer.bls import ObservationPiece
from transformer.domain import RowCounts, align, replace_with_snapshot
from transformer.parquet_spool import ParquetSpool, SpooledFile
from transformer.schemas import TableSpec
from transformer.stores import StagingStore

EXISTING_BATCH_ROWS = 1 << 17


class ExistingRows:
    """The rows of a group's current staging files in key order, handed out series range by series range.

    Each file is sorted by the natural key (``merge_latest`` writes it so), so the rows up to a series are a prefix
    of what is left of each file.
    """

    def __init__(self, paths: list[str], schema: pa.Schema) -> None:
        self.schema = schema
        self._files = [pq.ParquetFile(path) for path in paths]
        self._batches = [f.iter_batches(batch_size=EXISTING_BATCH_ROWS, use_threads=False) for f in self._files]
        self._buffers: list[pa.Table | None] = [None] * len(self._files)
        self._done = [False] * len(self._files)

    def through(self, last_series: str | None) -> pa.Table | None:
        """The rows whose ``series_id`` is at most ``last_series`` not handed out yet (None: every row left)."""
        parts = []
        for index in range(len(self._files)):
            taken = self._take(index, last_series)
            if taken is not None and taken.num_rows:
                parts.append(align(taken, self.schema))
        return pa.concat_tables(parts) if parts else None

    def _take(self, index: int, last_series: str | None) -> pa.Table | None:
        buffer = self._buffers[index]
        while not self._done[index] and (last_series is None or buffer is None or _last(buffer) <= last_series):
            batch = next(self._batches[index], None)
            if batch is None:
                self._done[index] = True
                break
            table = pa.Table.from_batches([batch])
            buffer = table if buffer is None else pa.concat_tables([buffer, table])
        if buffer is None:
            return None
        if last_series is None:
            self._buffers[index] = None
            return buffer
        within = pc.sum(pc.less_equal(buffer.column("series_id"), last_series)).as_py() or 0
        self._buffers[index] = buffer.slice(within) if within < buffer.num_rows else None
        return buffer.slice(0, within)

    def close(self) -> None:
        for file in self._files:
            file.close()


def _last(table: pa.Table) -> str:
    return table.column("series_id")[table.num_rows - 1].as_py()


@dataclass
class PieceTotals(RowCounts):
    rejected: list[pa.Table] = field(default_factory=list)


@dataclass
class StagedPieces:
    """The new staging file and the retired rows, spooled; ``discard`` removes the local files."""

    staged: SpooledFile
    retired: SpooledFile | None
    totals: PieceTotals
    spools: list[ParquetSpool] = field(default_factory=list)

    def discard(self) -> None:
        for spool in self.spools:
            spool.discard()


@contextmanager
def downloaded(staging: StagingStore, keys: list[str], directory: str | None) -> Iterator[list[str]]:
    """The group's current files, streamed to local temporary files (removed on leaving)."""
    paths = []
    try:
        for key in keys:
            handle, path = tempfile.mkstemp(suffix=".parquet", dir=directory)
            os.close(handle)
            paths.append(path)
            staging.download(key, path)
        yield paths
    finally:
        for path in paths:
            if os.path.exists(path):
                os.unlink(path)


def merge_pieces(
    pieces: Iterator[ObservationPiece],
    existing: ExistingRows,
    spec: TableSpec,
    retired_schema: pa.Schema,
    temp_dir: str | None,
    retire: Any,
) -> StagedPieces:
    """Merge each piece with the current rows of its series range, as a whole file would be merged.

    ``retire`` adds the retired-rows record's columns to a table of retired rows.

    Raises
    ------
    bls.NotGroupedBySeries, PayloadRejected
        From the pieces; nothing was uploaded (the spools are discarded).
    """
    totals = PieceTotals()
    staged = ParquetSpool(spec.schema, temp_dir, plain_columns=spec.plain_columns, background=True)
    retired = ParquetSpool(retired_schema, temp_dir)
    try:
        for piece in pieces:
            parsed = piece.parsed
            totals.rows_in += parsed.rows_in
            if parsed.rows_rejected:
                totals.rejected.append(parsed.rejected)
                totals.rows_quarantined += parsed.rows_rejected
            if piece.last_series is None:
                continue  # malformed lines only
            merged, gone = replace_with_snapshot(existing.through(piece.last_series), parsed, spec)
            staged.write(merged.table)
            if gone.num_rows:
                retired.write(retire(gone))
            totals.rows_written += merged.rows_written
            totals.rows_new += merged.rows_new
            totals.rows_revised += merged.rows_revised
            totals.rows_retired += gone.num_rows
        left = existing.through(None)  # series the new file no longer holds at all
        if left is not None and left.num_rows:
            retired.write(retire(left))
            totals.rows_retired += left.num_rows
        staged_file = staged.finish()
        retired_file = retired.finish() if retired.rows else None
    except BaseException:
        staged.discard()
        retired.discard()
        raise
    return StagedPieces(staged_file, retired_file, totals, [staged, retired])
