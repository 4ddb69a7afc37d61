"""The transformer's lake stores: landing reads (never writes), staging files and quarantine.

Each store takes the shared ``LakeStore`` (tests pass one over moto, the benchmark one over a folder); S3 failures
are ``LakeError`` (the record is retried, then dead-lettered), a landing that can never be staged as committed is
``PayloadRejected`` (quarantined).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datalake.contracts import Manifest, ManifestPart
from datalake.lake import LakeError, LakeStore, ObjectMissing, download
from datalake.layout import QUARANTINE, retired_prefix, staging_partition_prefix, staging_table_prefix
from transformer.domain import PayloadRejected, align
from transformer.hashed_streams import VerifiedStream
from transformer.landing import LandingRef
from transformer.parquet_spool import SpooledFile, table_bytes
from transformer.schemas import TableSpec

PARQUET_TYPE = "application/vnd.apache.parquet"
_FILE = re.compile(r"^part-(?P<group>[A-Za-z0-9_.\-]+)-(?P<digest>[0-9a-f]{16})\.parquet$")
_STEM = re.compile(r"^[A-Za-z0-9_.\-]{1,160}$")


def part_source(part: ManifestPart) -> str:
    """The lineage ``_source`` of a part: its key, pinned to the version for a file mirrored in place.

    Keys under ``ingest_date=`` are written once (their names carry the content hash), so the key alone is exact.
    """
    mirrored = "/ingest_date=" not in part.key
    return f"{part.key}?versionId={part.version_id}" if mirrored and part.version_id else part.key


class LandingReader:
    """Reads manifests and their parts; never writes to landing/."""

    def __init__(self, lake: LakeStore) -> None:
        self.lake = lake

    def manifest_bytes(self, key: str, version_id: str | None = None) -> bytes:
        return self.lake.get_bytes(key, version_id)

    def landing_at(self, key: str) -> LandingRef | None:
        """The landing whose manifest is at ``key`` now (its current ETag and version); None when it is absent.

        Raises
        ------
        datalake.lake.LakeError
            When S3 cannot be read (transient).
        """
        info = self.lake.head(key)
        if info is None:
            return None
        return LandingRef(bucket=self.lake.bucket, key=key, etag=info.etag, version_id=info.version_id)

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
        download(self.lake, key, path)

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
