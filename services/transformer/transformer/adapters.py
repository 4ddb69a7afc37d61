"""Transformer adapters: the lake (landing reads, staging and quarantine writes), the partition lock, Glue and state.

Every adapter takes its AWS client (or the shared ``LakeStore``) as an optional argument, so tests pass a
moto-backed client or a fake. AWS failures become ``LakeError``/``StateError``/``GlueError``: the record fails and
the message is retried, then dead-lettered.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from datalake.aws import client
from datalake.contracts import Manifest, ManifestPart
from datalake.lake import LakeError, LakeStore, ObjectMissing
from datalake.layout import QUARANTINE, retired_prefix, staging_partition_prefix, staging_table_prefix
from datalake.lease import Lease, LeaseBusy
from datalake.state import StateError, StateStore, dataset_pk, to_item
from transformer.domain import PayloadRejected, align, is_text_dictionary
from transformer.schemas import TableSpec, glue_columns

logger = Logger(child=True)

READ_BYTES = 8 << 20
PARQUET_TYPE = "application/vnd.apache.parquet"
# Parts at least this large (by their manifest size) are hashed on a worker thread while they are parsed; below
# it, starting and joining the thread costs more than the hashing it would overlap (a 1.6 MB file hashes in ~1 ms).
BACKGROUND_HASH_BYTES = 16 << 20
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
_FILE = re.compile(r"^part-(?P<group>[A-Za-z0-9_.\-]+)-(?P<digest>[0-9a-f]{16})\.parquet$")
_STEM = re.compile(r"^[A-Za-z0-9_.\-]{1,160}$")


class GlueError(RuntimeError):
    """The Glue catalog could not be read or updated."""


def part_source(part: ManifestPart) -> str:
    """The lineage ``_source`` of a part: its key, pinned to the version for a file mirrored in place.

    Keys under ``ingest_date=`` are written once (their names carry the content hash), so the key alone is exact.
    """
    mirrored = "/ingest_date=" not in part.key
    return f"{part.key}?versionId={part.version_id}" if mirrored and part.version_id else part.key


# ----------------------------------------------------------------------------------------------------------------
# Landing
# ----------------------------------------------------------------------------------------------------------------


class _BackgroundHash:
    """sha256 over a sequence of chunks on a worker thread (hashlib releases the GIL on large buffers), so
    verifying a large part overlaps with parsing it instead of adding to it. At most ``depth`` chunks wait."""

    def __init__(self, depth: int = 2) -> None:
        self.digest = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="part-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self.digest.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        self.stop()
        return self.digest.hexdigest()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class VerifiedStream:
    """A landing object's body, hashed while it is read; ``verify`` checks it against its manifest entry.

    Read errors (a reset connection, a short body) become ``LakeError``: they are transient, unlike a payload that
    is itself bad.
    """

    def __init__(self, body: Any, key: str, sha256: str | None = None, size: int | None = None) -> None:
        self._body = body
        self.key = key
        self._expected_sha = sha256
        self._expected_size = size
        self._hash: Any = hashlib.sha256() if sha256 is not None else None
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._body.read() if size is None or size < 0 else self._body.read(size)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise LakeError(f"reading {self.key} failed after {self.bytes_read} bytes: {exc}") from exc
        if self._hash is not None:
            if (
                len(data) >= READ_BYTES // 32
                and (self._expected_size or 0) >= BACKGROUND_HASH_BYTES
                and not isinstance(self._hash, _BackgroundHash)
            ):
                # a large part: hand the hashing to a worker thread (the digest so far is carried over)
                background = _BackgroundHash()
                background.digest = self._hash
                self._hash = background
            self._hash.update(data)
        self.bytes_read += len(data)
        return data

    def verify(self) -> None:
        """Raises PayloadRejected when the object read is not the one the manifest committed."""
        if self._expected_sha is None:
            return
        while self.read(READ_BYTES):  # a parser may stop at the closing bracket: hash the rest too
            pass
        digest = self._hash.hexdigest()
        if digest != self._expected_sha or (self._expected_size is not None and self.bytes_read != self._expected_size):
            raise PayloadRejected(
                f"{self.key} does not match its manifest: sha256 {digest[:12]}.. over {self.bytes_read} bytes, "
                f"manifest says {self._expected_sha[:12]}.. over {self._expected_size} bytes",
                check="part.sha256",
                part_key=self.key,
            )

    def close(self) -> None:
        if isinstance(self._hash, _BackgroundHash):
            self._hash.stop()
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


class LandingReader:
    """Reads manifests and their parts; never writes to landing/."""

    def __init__(self, lake: LakeStore) -> None:
        self.lake = lake

    def manifest_bytes(self, key: str, version_id: str | None = None) -> bytes:
        return self.lake.get_bytes(key, version_id)

    def open_part(self, part: ManifestPart) -> VerifiedStream:
        """The part's body at the exact version the manifest names.

        Raises
        ------
        PayloadRejected
            When the part (or its version) no longer exists: the landing can never be staged as committed.
        """
        try:
            body = self.lake.open(part.key, part.version_id)
        except ObjectMissing as exc:
            raise PayloadRejected(
                f"part {part.key} (version {part.version_id or 'latest'}) of the landing is missing",
                check="part.missing",
                part_key=part.key,
            ) from exc
        return VerifiedStream(body, part.key, part.sha256, part.bytes)

    def read_part(self, part: ManifestPart) -> bytes:
        stream = self.open_part(part)
        try:
            data = stream.read()
            stream.verify()
        finally:
            stream.close()
        return data

    def open_current(self, key: str) -> tuple[VerifiedStream, str] | None:
        """A mirrored file the manifest does not list, at its current version: (stream, ``_source``); None if absent."""
        info = self.lake.head(key)
        if info is None:
            return None
        try:
            body = self.lake.open(key, info.version_id)
        except ObjectMissing:
            return None
        source = f"{key}?versionId={info.version_id}" if info.version_id else key
        return VerifiedStream(body, key), source


# ----------------------------------------------------------------------------------------------------------------
# Parquet spooling, staging and quarantine
# ----------------------------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class StagedFile:
    key: str
    ingested_at: str | None


@dataclass(frozen=True)
class WriteResult:
    key: str
    changed: bool  # False when the group already held exactly these bytes
    rows: int


class StagingStore:
    """Staging files: ``staging/{table}/{partitions}/part-{group}-{sha256[:16]}.parquet``.

    Each group (a bulk file, an API series, a snapshot) lives in exactly one file. A new version is uploaded under
    its new content-derived name first, and only then are the group's older files deleted: a reader sees the old
    rows or the new rows, never a half-written file, and a crash in between leaves two complete files that the
    next merge of the group folds back into one.
    """

    def __init__(self, lake: LakeStore, temp_dir: str | None = None) -> None:
        self.lake = lake
        self.temp_dir = temp_dir

    @staticmethod
    def prefix(spec: TableSpec, partition: dict[str, str]) -> str:
        return staging_partition_prefix(spec.name, partition) if partition else staging_table_prefix(spec.name)

    def group_files(self, prefix: str, group: str) -> list[str]:
        keys = []
        for info in self.lake.list(prefix):
            name = info.key[len(prefix) :]
            match = _FILE.fullmatch(name)
            if match and match["group"] == group:
                keys.append(info.key)
        return sorted(keys)

    def newest_ingestion(self, keys: list[str]) -> str | None:
        """The newest ``ingested-at`` recorded on the group's files (ISO text, UTC), for snapshot tables."""
        stamps = []
        for key in keys:
            info = self.lake.head(key)
            if info is not None and info.metadata.get("ingested-at"):
                stamps.append(info.metadata["ingested-at"])
        return max(stamps) if stamps else None

    def read(self, keys: list[str], schema: pa.Schema) -> pa.Table | None:
        tables = []
        for key in keys:
            data = self.lake.get_bytes(key)
            try:
                tables.append(pq.read_table(pa.BufferReader(data), use_threads=False))
            except pa.ArrowException as exc:
                raise LakeError(f"staging file {key} is not readable Parquet: {exc}") from exc
        if not tables:
            return None
        return pa.concat_tables([align(t, schema) for t in tables])

    def write(
        self,
        spec: TableSpec,
        partition: dict[str, str],
        group: str,
        table: pa.Table,
        metadata: dict[str, str],
        existing: list[str] | None = None,
    ) -> WriteResult:
        """Write a merged group as the group's only file. ``existing``: the group's files, when the caller listed
        them already under the group's lock (one LIST a landing, not two)."""
        body = table_bytes(table, spec.plain_columns)
        digest = hashlib.sha256(body).hexdigest()
        return self._install(
            spec,
            partition,
            group,
            digest,
            table.num_rows,
            lambda key: self.lake.put_bytes(key, body, metadata=metadata, content_type=PARQUET_TYPE),
            existing,
        )

    def put(
        self,
        spec: TableSpec,
        partition: dict[str, str],
        group: str,
        spooled: SpooledFile,
        metadata: dict[str, str],
        existing: list[str] | None = None,
    ) -> WriteResult:
        """Upload a finished (spooled) file as the group's only file (``existing``: as for ``write``)."""

        def upload(key: str) -> None:
            with open(spooled.path, "rb") as handle:
                self.lake.upload_fileobj(key, handle, metadata=metadata, content_type=PARQUET_TYPE)

        return self._install(spec, partition, group, spooled.sha256, spooled.rows, upload, existing)

    def write_retired(self, spec: TableSpec, partition: dict[str, str], group: str, rows: pa.Table, run_id: str) -> str:
        """Keep rows that left current staging (their keys are gone from a new full snapshot), with when and by
        which run: ``staging/{table}_retired/{partitions}/part-{group}-{sha16}.parquet``, beside the table (outside
        its Glue location), one file per retirement.

        Returns
        -------
        The key written.
        """
        body = table_bytes(retired_record(rows, run_id, datetime.now(UTC)))
        prefix = retired_prefix(spec.name, partition)
        key = f"{prefix}part-{group}-{hashlib.sha256(body).hexdigest()[:16]}.parquet"
        self.lake.put_bytes(key, body, metadata={"run-id": run_id}, content_type=PARQUET_TYPE)
        return key

    def put_retired(
        self, spec: TableSpec, partition: dict[str, str], group: str, spooled: SpooledFile, run_id: str
    ) -> str:
        """``write_retired`` for a retired-rows record spooled piece by piece (``retired_record`` per piece)."""
        key = f"{retired_prefix(spec.name, partition)}part-{group}-{spooled.sha256[:16]}.parquet"
        with open(spooled.path, "rb") as handle:
            self.lake.upload_fileobj(key, handle, metadata={"run-id": run_id}, content_type=PARQUET_TYPE)
        return key

    def download(self, key: str, path: str) -> None:
        """Stream a staging file to a local path (a large group is merged piece by piece, not read whole).

        Raises
        ------
        LakeError
        """
        body = self.lake.open(key)
        try:
            with open(path, "wb") as out:
                while chunk := body.read(READ_BYTES):
                    out.write(chunk)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise LakeError(f"reading staging file {key} failed: {exc}") from exc
        finally:
            body.close()

    def _install(
        self,
        spec: TableSpec,
        partition: dict[str, str],
        group: str,
        digest: str,
        rows: int,
        upload: Any,
        existing: list[str] | None = None,
    ) -> WriteResult:
        """The new file first, under its content name; then the group's other files go."""
        prefix = self.prefix(spec, partition)
        if existing is None:
            existing = self.group_files(prefix, group)
        key = f"{prefix}part-{group}-{digest[:16]}.parquet"
        changed = key not in existing or len(existing) > 1
        if key not in existing:
            upload(key)
        for old in existing:
            if old != key:
                self.lake.delete(old)
        return WriteResult(key=key, changed=changed, rows=rows)


RETIRED_FIELDS = (pa.field("_retired_at", pa.timestamp("us", tz="UTC")), pa.field("_retired_by_run", pa.string()))


def retired_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([*schema, *RETIRED_FIELDS])


def retired_record(rows: pa.Table, run_id: str, at: datetime) -> pa.Table:
    """Rows leaving current staging, with when and by which run."""
    n = rows.num_rows
    return rows.append_column(RETIRED_FIELDS[0], constant_column(at, n, RETIRED_FIELDS[0].type)).append_column(
        RETIRED_FIELDS[1], constant_column(run_id, n, pa.string())
    )


def constant_column(value: Any, length: int, data_type: pa.DataType) -> pa.Array:
    return pc.fill_null(pa.nulls(length, data_type), pa.scalar(value, data_type))


class QuarantineStore:
    """``quarantine/{source}/{dataset}/{landing stem}/``: rejected rows per table, or the reason a payload failed."""

    def __init__(self, lake: LakeStore, temp_dir: str | None = None) -> None:
        self.lake = lake
        self.temp_dir = temp_dir

    @staticmethod
    def prefix(manifest: Manifest, manifest_key: str) -> str:
        stem = manifest_key.rsplit("/", 1)[-1].removesuffix(".manifest.json")
        if not _STEM.fullmatch(stem):
            raise ValueError(f"manifest name {stem!r} is not key-safe")
        return f"{QUARANTINE}/{manifest.source.value}/{manifest.dataset}/{stem}/"

    def write_rows(self, prefix: str, table_name: str, rejected: pa.Table) -> str:
        key = f"{prefix}rows-{table_name}.parquet"
        self.lake.put_bytes(key, table_bytes(rejected), content_type=PARQUET_TYPE)
        return key

    def put_rows(self, prefix: str, table_name: str, spooled: SpooledFile) -> str:
        key = f"{prefix}rows-{table_name}.parquet"
        with open(spooled.path, "rb") as handle:
            self.lake.upload_fileobj(key, handle, content_type=PARQUET_TYPE)
        return key

    def write_reason(self, prefix: str, document: dict[str, Any]) -> str:
        key = f"{prefix}reason.json"
        body = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"
        self.lake.put_bytes(key, body, content_type="application/json")
        return key


# ----------------------------------------------------------------------------------------------------------------
# The partition lock (a lease in the state table)
# ----------------------------------------------------------------------------------------------------------------


PartitionLock = Lease  # a lease per staging group, so two landings of one group never merge over each other
PartitionBusy = LeaseBusy


# ----------------------------------------------------------------------------------------------------------------
# Glue: tables whose columns come from the data (Socrata datasets)
# ----------------------------------------------------------------------------------------------------------------

PARQUET_STORAGE = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}


class GlueCatalog:
    """Creates or updates the Glue table of a staging table whose schema is only known at run time."""

    def __init__(self, database: str, bucket: str, glue: Any | None = None) -> None:
        self.database = database
        self.bucket = bucket
        self._glue = glue

    @property
    def glue(self) -> Any:
        if self._glue is None:
            self._glue = client("glue")
        return self._glue

    def table_input(self, spec: TableSpec, description: str) -> dict[str, Any]:
        return {
            "Name": spec.name,
            "Description": description[:2048],
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
            "PartitionKeys": [{"Name": k, "Type": "string"} for k in spec.partition_keys],
            "StorageDescriptor": {
                **PARQUET_STORAGE,
                "Columns": glue_columns(spec.schema),
                "Location": f"s3://{self.bucket}/{staging_table_prefix(spec.name)}",
            },
        }

    def ensure_table(self, spec: TableSpec, description: str) -> bool:
        """Create the table, or update it when its columns differ. Returns True when the catalog changed."""
        wanted = self.table_input(spec, description)
        try:
            try:
                current = self.glue.get_table(DatabaseName=self.database, Name=spec.name)["Table"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "EntityNotFoundException":
                    raise
                self.glue.create_table(DatabaseName=self.database, TableInput=wanted)
                return True
            columns = current.get("StorageDescriptor", {}).get("Columns", [])
            if [(c["Name"], c["Type"]) for c in columns] == [(c["Name"], c["Type"]) for c in glue_columns(spec.schema)]:
                return False
            self.glue.update_table(DatabaseName=self.database, TableInput=wanted)
            return True
        except (ClientError, BotoCoreError) as exc:
            raise GlueError(f"cannot register {self.database}.{spec.name} in Glue: {exc}") from exc


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ----------------------------------------------------------------------------------------------------------------
# State: the dataset's staging outcome and the source's freshness
# ----------------------------------------------------------------------------------------------------------------


class StateRecorder:
    """Writes ``DATASET#{source}#{dataset}/STATE`` (staging fields only) and ``SOURCE#{source}/FRESHNESS``."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def staged(
        self,
        manifest: Manifest,
        manifest_key: str,
        counts: dict[str, int],
        now: datetime,
        current_files: dict[str, str | None] | None = None,
    ) -> None:
        """Both items in one transaction: the dataset's staging outcome and its source's freshness.

        ``current_files`` (staging group -> its file, None when retired) updates ``staged_groups``, the files the
        dataset's staging consists of, which the extractor checks to restore any that disappear.
        """
        source = manifest.source.value
        previous = self.state.get(dataset_pk(source, manifest.dataset), "STATE") or {}
        groups = {**(previous.get("staged_groups") or {}), **(current_files or {})}
        dataset_values = {
            "staged_groups": {group: key for group, key in sorted(groups.items()) if key},
            "staged_at": utc_iso(now),
            "staged_manifest_key": manifest_key,
            "staged_run_id": manifest.run_id,
            "staged_content_sha256": manifest.content_sha256,
            "staged_ingested_at": utc_iso(manifest.fetched),
            "staged_rows": counts.get("rows_written", 0),
            "staged_rows_quarantined": counts.get("rows_quarantined", 0),
            "last_outcome": "staged",
        }
        freshness_values = {
            "last_staged_at": utc_iso(now),
            "last_staged_dataset": manifest.dataset,
            "last_staged_run_id": manifest.run_id,
            "last_staged_manifest_key": manifest_key,
        }
        items = [
            self._update(dataset_pk(source, manifest.dataset), "STATE", dataset_values),
            self._update(f"SOURCE#{source}", "FRESHNESS", freshness_values),
        ]
        try:
            self.state.ddb.transact_write_items(TransactItems=items)
        except (ClientError, BotoCoreError) as exc:
            raise StateError(f"cannot record the staging of {manifest_key}: {exc}") from exc

    def _update(self, pk: str, sk: str, values: dict[str, Any]) -> dict[str, Any]:
        names = {f"#n{i}": k for i, k in enumerate(values)}
        return {
            "Update": {
                "TableName": self.state.table_name,
                "Key": to_item({"pk": pk, "sk": sk}),
                "UpdateExpression": "SET " + ", ".join(f"#n{i} = :v{i}" for i in range(len(values))),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {f":v{i}": v for i, v in enumerate(to_item(values).values())},
            }
        }

    def quarantined(
        self, manifest: Manifest, manifest_key: str, reason: str, quarantine_key: str, now: datetime
    ) -> None:
        self.state.update(
            dataset_pk(manifest.source.value, manifest.dataset),
            "STATE",
            set_values={
                "quarantined_at": utc_iso(now),
                "quarantined_manifest_key": manifest_key,
                "quarantine_key": quarantine_key,
                "quarantine_reason": reason[:1000],
                "last_outcome": "quarantined",
            },
        )
