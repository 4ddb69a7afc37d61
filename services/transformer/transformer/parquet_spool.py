"""Parquet written the same way every time, to a temporary file or to memory, hashed as it is written.

The bytes of a staging file depend on its rows only (no timestamps in the footer, row groups of a fixed size,
each column's encoding decided from the data or declared by its table), so the file can be named by its sha256 and
a landing staged twice gives the same object.
"""

from __future__ import annotations

import hashlib
import os
import queue
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transformer.domain import align, is_text_dictionary

# Parquet written the same way every time: the bytes depend on the rows only (no timestamps in the footer).
# pyarrow's own schema is not stored: text held dictionary-encoded in memory (``domain.label``) is read back as
# plain text, and Parquet's own types carry the rest (int32, double, timestamps in UTC, dates, nested points).
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "snappy",
    "version": "2.6",
    "data_page_version": "1.0",
    "store_schema": False,
}
ROW_GROUP_ROWS = 128_000
SAMPLE_ROWS = 10_000  # rows that decide each column's encoding


@dataclass(frozen=True)
class SpooledFile:
    path: str
    sha256: str
    size: int
    rows: int


class _HashingFile:
    """A write-only file that hashes what it writes, so a finished Parquet file is never read back to be named."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.digest = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.size += len(view)
        return self._file.write(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self.closed:
            self._file.close()
            self.closed = True


def compact_dictionaries(table: pa.Table) -> pa.Table:
    """Each dictionary-encoded column with only the values its rows use, in the order they first appear.

    The Parquet writer writes a dictionary column's whole dictionary into every row group; compacted, a row group
    gets the dictionary it would get from the same rows as plain text (the same bytes, in fact).
    """
    arrays = []
    changed = False
    for column in table.columns:
        if not pa.types.is_dictionary(column.type):
            arrays.append(column)
            continue
        array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        if len(array.dictionary) == 1 and array.null_count < len(array):
            arrays.append(array)  # a label: its one value is used
            continue
        used = pc.unique(array.indices).drop_null()
        values = array.dictionary.take(used)
        if len(pc.unique(values)) != len(values):  # two codes for one value: encode the text again
            arrays.append(pc.dictionary_encode(array.dictionary_decode()))
        else:
            arrays.append(pa.DictionaryArray.from_arrays(pc.index_in(array.indices, value_set=used), values))
        changed = True
    return pa.Table.from_arrays(arrays, schema=table.schema) if changed else table


def column_options(sample: pa.Table) -> dict[str, Any]:
    """Dictionary encoding and statistics where they pay, decided from the first row group's data.

    A high-cardinality text column (names, addresses) only wastes time in a dictionary that Parquet abandons, and
    its min/max statistics prune nothing; low-cardinality columns (codes, periods, lineage) get both. The choice is
    a function of the rows, so the same landing always gives the same bytes.
    """
    dictionary, statistics = [], []
    sample = sample.slice(0, SAMPLE_ROWS)
    limit = max(1, sample.num_rows // 10)
    for field in sample.schema:
        if pa.types.is_nested(field.type):
            continue  # points kept raw in quarantine: plain encoding, no statistics
        if is_text_dictionary(field.type):  # a label repeated on every row (``domain.label``)
            dictionary.append(field.name)
            statistics.append(field.name)
            continue
        low = pc.count_distinct(sample.column(field.name)).as_py() <= limit
        text = pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
        if low:
            dictionary.append(field.name)
        if low or not text:
            statistics.append(field.name)
    return {"use_dictionary": dictionary, "write_statistics": statistics}


class ParquetSpool:
    """Writes batches to a temporary Parquet file, hashing it on the way, so it can be named by its sha256.

    ``plain_columns``: write as ``table_bytes`` does with them (a dictionary for every other column, statistics for
    all), so a file spooled piece by piece has the bytes of the same rows written at once; None decides the
    encoding from the first row group. ``background``: row groups are written on a worker thread (pyarrow releases
    the GIL), so encoding one overlaps with preparing the next.
    """

    def __init__(
        self,
        schema: pa.Schema,
        directory: str | None = None,
        plain_columns: tuple[str, ...] | None = None,
        background: bool = False,
    ) -> None:
        self.schema = schema
        handle, self.path = tempfile.mkstemp(suffix=".parquet", dir=directory)
        os.close(handle)
        self.plain_columns = plain_columns
        self.physical: pa.Schema | None = None  # the schema written: ``schema``, with text kept dictionary-encoded
        self._sink: _HashingFile | None = None
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self.rows = 0
        self._worker = _RowGroupWorker() if background else None

    def write(self, table: pa.Table) -> None:
        """Buffer rows into row groups of ROW_GROUP_ROWS, so the file's layout does not depend on batch sizes."""
        if not table.num_rows:
            return
        table = self._conform(table)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        while self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(ROW_GROUP_ROWS)

    def _conform(self, table: pa.Table) -> pa.Table:
        """Every batch in one physical schema: the first batch's, as ``align`` gives it (encoded text stays so)."""
        if self.physical is None:
            self.physical = align(table, self.schema).schema
        if table.schema.equals(self.physical):
            return table
        arrays = []
        for field in self.physical:
            column = table.column(field.name) if field.name in table.column_names else pa.nulls(len(table), field.type)
            if column.type != field.type:
                if is_text_dictionary(field.type) and pa.types.is_string(column.type):
                    column = pc.dictionary_encode(column)
                else:
                    column = pc.cast(column, field.type)
            arrays.append(column)
        return pa.Table.from_arrays(arrays, schema=self.physical)

    def _open(self, first: pa.Table) -> pq.ParquetWriter:
        if self._writer is None:
            self._sink = _HashingFile(self.path)
            if self.plain_columns is None:
                encoding = column_options(first)
            else:
                encoding = {
                    "use_dictionary": [n for n in self.schema.names if n not in self.plain_columns],
                    "write_statistics": True,
                }
            self._writer = pq.ParquetWriter(self._sink, first.schema, **{**PARQUET_OPTIONS, **encoding})
        return self._writer

    def _flush(self, rows: int) -> None:
        pending = self._pending[0] if len(self._pending) == 1 else pa.concat_tables(self._pending)
        head, tail = pending.slice(0, rows), pending.slice(rows)
        if any(column.num_chunks > 1 for column in head.columns):
            head = head.combine_chunks()  # a row group written from one chunk per column, as table_bytes writes it
        head = compact_dictionaries(head)
        writer = self._open(head)
        if self._worker is not None:
            self._worker.submit(lambda: writer.write_table(head, row_group_size=ROW_GROUP_ROWS))
        else:
            writer.write_table(head, row_group_size=ROW_GROUP_ROWS)
        self._pending = [tail] if tail.num_rows else []
        self._pending_rows = tail.num_rows
        # hand freed buffers back to the OS between row groups: peak memory stays one row group deep
        pa.default_memory_pool().release_unused()

    def finish(self) -> SpooledFile:
        if self._pending_rows:
            self._flush(self._pending_rows)
        elif self.rows == 0:
            empty = self.schema.empty_table()
            self._open(empty).write_table(empty)
        if self._worker is not None:
            self._worker.join()
        self._writer.close()
        self._writer = None
        self._sink.close()
        return SpooledFile(self.path, self._sink.digest.hexdigest(), self._sink.size, self.rows)

    def discard(self) -> None:
        if self._worker is not None:
            self._worker.join(raise_error=False)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._sink is not None:
            self._sink.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


class _RowGroupWorker:
    """Runs writes one at a time, in order, on a worker thread; at most one waits while another runs."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="row-group-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (task := self._queue.get()) is not None:
            if self._error is None:
                try:
                    task()
                except BaseException as exc:  # noqa: BLE001 - raised in the owner's thread by join/submit
                    self._error = exc

    def submit(self, task: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(task)

    def join(self, raise_error: bool = True) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if raise_error and self._error is not None:
            raise self._error


def table_bytes(table: pa.Table, plain_columns: tuple[str, ...] | None = None) -> bytes:
    """A table as Parquet bytes, in memory (a merged group is in memory already), written as ParquetSpool writes.

    ``plain_columns``: the columns known to be high-cardinality (the rest get a dictionary); None samples the data.
    """
    sink = pa.BufferOutputStream()
    if plain_columns is None:
        encoding = column_options(table)
    else:
        encoding = {
            "use_dictionary": [n for n in table.column_names if n not in plain_columns],
            "write_statistics": True,
        }
    options = {**PARQUET_OPTIONS, **encoding}
    with pq.ParquetWriter(sink, table.schema, **options) as writer:
        for start in range(0, max(table.num_rows, 1), ROW_GROUP_ROWS):
            group = table.slice(start, ROW_GROUP_ROWS)
            writer.write_table(compact_dictionaries(group.combine_chunks()), row_group_size=ROW_GROUP_ROWS)
    return sink.getvalue().to_pybytes()


def table_file(table: pa.Table, directory: str | None = None) -> SpooledFile:
    spool = ParquetSpool(table.schema, directory)
    try:
        spool.write(table)
        return spool.finish()
    except BaseException:
        spool.discard()
        raise
