"""Stage a local file through the transformer's public staging code, for the benchmark (``bench/probes.py staging``).

The landing is committed in a folder-backed lake exactly as the extractor commits it (parts with their sha256,
then the manifest), and ``TransformerService.stage`` runs on it: the same parsing, validation, hashing, merging
and Parquet writing as in Lambda. Only the AWS edges differ: a folder instead of S3, no lock table, no SNS.
The reported ``seconds`` cover ``stage`` alone; committing the landing (hashing the input) is the extractor's work.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from datalake.contracts import Manifest, ManifestPart, Source
from datalake.lake import ObjectInfo, ObjectMissing, PutResult
from datalake.layout import bulk_mirror_key, landing_part_key, manifest_key

BENCH_RUN_ID = "20261121T080000Z-0bec4c00"
BENCH_MOMENT = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
BENCH_SOCRATA_ID = "bnch-0001"


class FolderLake:
    """The ``LakeStore`` interface over a local folder (one version per key; metadata kept in memory)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bucket = root.name
        self._metadata: dict[str, dict[str, str]] = {}

    def _path(self, key: str) -> Path:
        if ".." in key.split("/") or key.startswith("/"):
            raise ValueError(f"key {key!r} escapes the lake")
        return self.root / key

    def link(self, key: str, source: Path) -> None:
        """Place an existing file at ``key`` without copying it (a large benchmark input)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.symlink_to(source.resolve())

    def put_bytes(
        self, key: str, body: bytes, metadata: dict[str, str] | None = None, content_type: str = ""
    ) -> PutResult:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        self._metadata[key] = dict(metadata or {})
        return PutResult(key=key, etag=hashlib.md5(body).hexdigest(), version_id=None)  # noqa: S324 - an ETag

    def upload_fileobj(
        self, key: str, fileobj: IO[bytes], metadata: dict[str, str] | None = None, content_type: str = ""
    ) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            shutil.copyfileobj(fileobj, out, 8 << 20)
        self._metadata[key] = dict(metadata or {})

    def open(self, key: str, version_id: str | None = None) -> Any:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise ObjectMissing(f"{key} does not exist") from exc

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        with self.open(key, version_id) as handle:
            return handle.read()

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.exists():
            return None
        stat = path.stat()
        return ObjectInfo(key, stat.st_size, "", stat.st_mtime, self._metadata.get(key, {}), None)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self._path(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        if not base.exists():
            return
        for path in sorted(base.rglob("*")):
            key = path.relative_to(self.root).as_posix()
            if path.is_file() and key.startswith(prefix):
                yield ObjectInfo(key, path.stat().st_size, "", path.stat().st_mtime, {})

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
        self._metadata.pop(key, None)


class _NoLock:
    @contextmanager
    def hold(self, resource: str) -> Iterator[None]:
        yield


class _NoState:
    def staged(self, *args: Any) -> None:
        return None

    def quarantined(self, *args: Any) -> None:
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(8 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _part(lake: FolderLake, key: str, source: Path, role: str, name: str | None = None) -> ManifestPart:
    lake.link(key, source)
    return ManifestPart(key=key, sha256=_sha256(source), bytes=source.stat().st_size, role=role, name=name)  # type: ignore[arg-type]


def commit_landing(lake: FolderLake, kind: str, source: Path) -> tuple[str, Manifest]:
    """Commit ``source`` as a landing of ``kind`` (``bls_bulk``: a data file, or a survey's folder; ``socrata``);
    returns the manifest key."""
    if kind == "bls_bulk" and source.is_dir():  # a whole survey: its data, series and mapping files
        files = sorted(f for f in source.iterdir() if f.is_file() and not f.name.startswith("."))
        survey = files[0].name.split(".", 1)[0]
        parts = [
            _part(lake, bulk_mirror_key(survey, f.name), f, "data" if ".data." in f.name else "mapping", f.name)
            for f in files
        ]
        src, dataset = Source.BLS_BULK, survey
    elif kind == "bls_bulk":
        survey = source.name.split(".", 1)[0]
        parts = [_part(lake, bulk_mirror_key(survey, source.name), source, "data", source.name)]
        src, dataset = Source.BLS_BULK, survey
    elif kind == "socrata":
        src, dataset = Source.SOCRATA, BENCH_SOCRATA_ID
        views = source.with_suffix(".views.json")
        digest = _sha256(source)
        parts = [
            _part(lake, landing_part_key(src, dataset, BENCH_MOMENT, digest, 0, ".json"), source, "data"),
            _part(lake, landing_part_key(src, dataset, BENCH_MOMENT, digest, 1, ".json"), views, "metadata"),
        ]
    else:
        raise ValueError(f"unknown kind {kind!r} (bls_bulk, socrata)")
    content = hashlib.sha256("".join(p.sha256 for p in parts).encode()).hexdigest()
    manifest = Manifest(
        run_id=BENCH_RUN_ID,
        source=src,
        dataset=dataset,
        created_at=BENCH_MOMENT,
        source_url=f"file://{source.resolve()}",
        content_sha256=content,
        parts=parts,
    )
    key = manifest_key(src, dataset, BENCH_MOMENT, content)
    lake.put_bytes(key, manifest.model_dump_json().encode())
    return key, manifest


def stage_file(kind: str, source: Path, target_dir: Path) -> dict[str, Any]:
    """Stage one file; the staged Parquet lands under ``target_dir/lake/staging/``."""
    from datalake.arrow import skip_pandas_probe

    skip_pandas_probe()  # as the handler does before loading the staging code
    from transformer.landing import LandingRef
    from transformer.service import Ports, TransformerService
    from transformer.stores import LandingReader, QuarantineStore, StagingStore

    started = time.perf_counter()
    if target_dir.exists():
        shutil.rmtree(target_dir)
    lake = FolderLake(target_dir / "lake")
    temp = target_dir / "tmp"
    temp.mkdir(parents=True)
    key, manifest = commit_landing(lake, kind, source)
    events: list[Any] = []
    ports = Ports(
        landing=LandingReader(lake),  # type: ignore[arg-type]
        staging=StagingStore(lake, str(temp)),  # type: ignore[arg-type]
        quarantine=QuarantineStore(lake, str(temp)),  # type: ignore[arg-type]
        locks=_NoLock(),  # type: ignore[arg-type]
        state=_NoState(),  # type: ignore[arg-type]
        publish=events.append,
    )
    service = TransformerService(ports, temp_dir=str(temp))
    landing = LandingRef(bucket=lake.bucket, key=key, etag="bench")
    setup_s = time.perf_counter() - started
    began = time.perf_counter()
    outcome = service.stage(landing, service.read_manifest(landing))
    seconds = time.perf_counter() - began
    counts = outcome.counts
    return {
        "rows": counts["rows_written"],
        "rows_in": counts["rows_in"],
        "rows_quarantined": counts["rows_quarantined"],
        "status": outcome.status,
        "staged_keys": outcome.staged_keys,
        "seconds": seconds,
        "setup_s": round(setup_s, 3),
        "pid": os.getpid(),
    }
