"""Modeler adapters: the lake (staging files in, marts out), the state table (published marts) and the pipeline
topic; the rebuild lease is ``datalake.lease``. Each takes its boto3 client as an optional argument; errors are
raised, never swallowed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datalake.aws import client
from datalake.contracts import PipelineEvent
from datalake.events import publish_event
from datalake.lake import LakeStore, ObjectMissing, PutResult, download
from datalake.layout import STAGING
from datalake.state import StateStore
from modeler.lineage import STAGING_FILE_COLUMN

MART_PK = "MART#{name}"
PUBLISHED_SK = "PUBLISHED"
FAILURE_SK = "LAST_FAILURE"


class NotGroupedBy(ValueError):
    """A staging file is not sorted by the column a mart builds in chunks of: it is read whole instead."""


@dataclass(frozen=True)
class StagingFile:
    table: str
    key: str
    etag: str
    size: int
    partition: dict[str, str] = field(default_factory=dict)


def parse_staging_key(key: str) -> tuple[str, dict[str, str]] | None:
    """``staging/{table}/{k=v}/.../part-*.parquet`` -> (table, partition values); None for anything else.

    Hidden paths (a segment starting with ``_`` or ``.``, e.g. a writer's temporary folder) are not data, as in Hive.
    """
    pieces = key.split("/")
    if len(pieces) < 3 or pieces[0] != STAGING or not key.endswith(".parquet"):
        return None
    if any(p.startswith(("_", ".")) for p in pieces[1:]):
        return None
    partition = {}
    for segment in pieces[2:-1]:
        name, sep, value = segment.partition("=")
        if not sep:
            return None
        partition[name] = value
    return pieces[1], partition


def parquet_bytes(table: pa.Table) -> bytes:
    """Deterministic Parquet bytes: the same table always gives the same object (and content hash)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table.combine_chunks(), sink, compression="snappy", write_statistics=True)
    return sink.getvalue().to_pybytes()


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class LakeMarts:
    """Reads staging tables and published marts, and publishes marts and their lineage, in the lake bucket.

    Parquet is read with ``use_threads=False``: the objects are small and already in memory, and no Arrow reader
    thread is left to race the interpreter's exit in a local run (apache/arrow#34314).
    """

    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        self.store = LakeStore(bucket, s3)

    def staging_files(self) -> dict[str, list[StagingFile]]:
        """Every staging table with its Parquet files (one listing of ``staging/``)."""
        tables: dict[str, list[StagingFile]] = {}
        for info in self.store.list(f"{STAGING}/"):
            parsed = parse_staging_key(info.key)
            if parsed is None:
                continue
            table, partition = parsed
            tables.setdefault(table, []).append(
                StagingFile(table=table, key=info.key, etag=info.etag, size=info.size, partition=partition)
            )
        return {name: sorted(files, key=lambda f: f.key) for name, files in sorted(tables.items())}

    def read_staging(self, files: list[StagingFile]) -> pa.Table:
        """One table from a staging table's files, with its Hive partition values as columns and each row's file."""
        parts = []
        for f in files:
            table = pq.read_table(pa.BufferReader(self.store.get_bytes(f.key)), use_threads=False)
            parts.append(self._with_file_columns(table, f))
        if not parts:
            return pa.table({})
        return pa.concat_tables(parts, promote_options="permissive")

    def download(self, key: str, path: str) -> None:
        """Stream an object to a local file (a large staging file is read row group by row group, not whole).

        Raises
        ------
        LakeError
        """
        download(self.store, key, path)

    def scan_staging(self, f: StagingFile, by: str, batch_rows: int = 1 << 18) -> Iterator[pa.Table]:
        """A staging file in chunks of whole ``by`` values (the rows of a value never span two chunks), with its
        Hive partition values and its key as columns, as ``read_staging`` gives them: memory holds one chunk.

        Raises
        ------
        NotGroupedBy
            When a ``by`` value comes again after another one (the file is not sorted by it): nothing is yielded
            after that, and the caller reads the file whole instead.
        LakeError
        """
        handle, path = tempfile.mkstemp(suffix=".parquet")
        os.close(handle)
        try:
            self.download(f.key, path)
            parquet = pq.ParquetFile(path)
            carry: pa.Table | None = None
            last: Any = None
            for batch in parquet.iter_batches(batch_size=batch_rows, use_threads=False):
                table = pa.Table.from_batches([batch])
                if carry is not None:
                    table = pa.concat_tables([carry, table])
                values = table.column(by)
                n = table.num_rows
                if n > 1 and pc.any(pc.less(values.slice(1), values.slice(0, n - 1))).as_py():
                    raise NotGroupedBy(f"{f.key} is not sorted by {by}")
                if last is not None and values[0].as_py() < last:
                    raise NotGroupedBy(f"{f.key}: {by} {values[0].as_py()} comes again after {last}")
                tail = pc.sum(pc.equal(values, values[n - 1])).as_py()
                carry, table = table.slice(n - tail), table.slice(0, n - tail)
                if table.num_rows:
                    last = table.column(by)[table.num_rows - 1].as_py()
                    yield self._with_file_columns(table, f)
            parquet.close()
            if carry is not None and carry.num_rows:
                yield self._with_file_columns(carry, f)
        finally:
            os.unlink(path)

    @staticmethod
    def _with_file_columns(table: pa.Table, f: StagingFile) -> pa.Table:
        n = table.num_rows
        for column, value in f.partition.items():
            if column not in table.column_names:
                table = table.append_column(column, pc.fill_null(pa.nulls(n, pa.string()), value))
        indices = pa.array(np.zeros(n, dtype=np.int32))
        return table.append_column(STAGING_FILE_COLUMN, pa.DictionaryArray.from_arrays(indices, [f.key]))

    def read_mart(self, key: str) -> pa.Table | None:
        try:
            return pq.read_table(pa.BufferReader(self.store.get_bytes(key)), use_threads=False)
        except ObjectMissing:
            return None

    def exists(self, key: str) -> bool:
        return self.store.head(key) is not None

    def put(self, key: str, body: bytes, content_type: str, metadata: dict[str, str] | None = None) -> PutResult:
        return self.store.put_bytes(key, body, metadata=metadata, content_type=content_type)

    def put_text_if_changed(self, key: str, text: str, content_type: str) -> bool:
        """Write a small text object unless it already holds exactly this text; True when written."""
        body = text.encode()
        try:
            if self.store.get_bytes(key) == body:
                return False
        except ObjectMissing:
            pass
        self.store.put_bytes(key, body, content_type=content_type)
        return True

    def get_json(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.store.get_bytes(key))
        except ObjectMissing:
            return None


class MartState:
    """The published version of each mart (fingerprint of its inputs, content hash, rows) and its last failure."""

    def __init__(self, table_name: str, dynamodb: Any | None = None) -> None:
        self.store = StateStore(table_name, dynamodb)

    def published(self, name: str) -> dict[str, Any] | None:
        return self.store.get(MART_PK.format(name=name), PUBLISHED_SK)

    def record_published(self, name: str, record: dict[str, Any]) -> None:
        self.store.put(MART_PK.format(name=name), PUBLISHED_SK, record)

    def record_failure(self, name: str, record: dict[str, Any]) -> None:
        self.store.put(MART_PK.format(name=name), FAILURE_SK, record)


class EventSink:
    """Publishes pipeline events on the PipelineTopic."""

    def __init__(self, topic_arn: str, sns: Any | None = None) -> None:
        self.topic_arn = topic_arn
        self._sns = sns

    def publish(self, event: PipelineEvent) -> str:
        return publish_event(event, self.topic_arn, self._sns or client("sns"))
