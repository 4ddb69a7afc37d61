"""Keeps the local lake folder (.lake/) and the emulator in step across runs.

moto keeps its state in memory, so each run restores the bucket and the state table from the folder before the
pipeline starts, and writes them back when it ends. The folder mirrors the bucket's keys, so
``.lake/marts/reports/bls_best_year/`` holds what the bucket would hold. Files are rewritten only when their
bytes changed, and files whose object is gone (a mirrored bulk file deleted upstream) are removed.

The save is atomic (``save_lake``): every new or changed file, the object metadata and the state table are first
written beside their targets (``*.tmp-sync``), then a journal (``_local/save-journal.json``) names the renames and
deletions, then they are applied and the journal removed. A failure before the journal leaves the previous lake
untouched (the temporary files are removed); a crash after it is rolled forward at the next start
(``recover_lake``). So the lake is always one run's whole state, never half of two.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCAL_DIR = "_local"  # runtime state beside the lake's keys; not part of the bucket
OBJECTS_FILE = "objects.json"
JOURNAL_FILE = "save-journal.json"
TMP_SUFFIX = ".tmp-sync"


class LocalLakeError(RuntimeError):
    """The local lake folder cannot be used as it is; the message names the file or folder and the fix."""


@dataclass
class SyncResult:
    written: int = 0
    unchanged: int = 0
    deleted: int = 0


def _lake_files(lake_dir: Path) -> dict[str, Path]:
    files = {}
    for path in lake_dir.rglob("*"):
        if path.is_file():
            key = path.relative_to(lake_dir).as_posix()
            if not key.startswith(f"{LOCAL_DIR}/"):
                files[key] = path
    return files


def restore_bucket(lake_dir: Path, s3: Any, bucket: str) -> int:
    """Upload the lake folder into the (empty) bucket, with each object's recorded metadata."""
    if not lake_dir.exists():
        return 0
    meta_path = lake_dir / LOCAL_DIR / OBJECTS_FILE
    try:
        recorded = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    except ValueError as exc:
        raise LocalLakeError(
            f"the lake's object metadata {meta_path} is corrupt ({exc}). Fix: delete it; the objects are then "
            "restored without their recorded metadata and versions (the next run lands what it cannot match)"
        ) from exc
    count = 0
    for key, path in sorted(_lake_files(lake_dir).items()):
        meta = recorded.get(key, {})
        put = s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            Metadata=meta.get("metadata", {}),
            ContentType=meta.get("content_type") or mimetypes.guess_type(key)[0] or "binary/octet-stream",
        )
        if meta.get("version_id") and put.get("VersionId"):
            _keep_version(bucket, key, put["VersionId"], meta["version_id"])
        count += 1
    return count


def _keep_version(bucket: str, key: str, given: str, recorded: str) -> None:
    """Give a restored object the version id it had in the last run.

    Manifests pin the version of each part they list (and lineage names ``key?versionId=``), so a landing whose
    transform is retried in a later run (a TransformDLQ redrive, a TransformQueue message kept for the next run)
    must find the same version, as it would in a real versioned bucket. moto assigns new ids on PutObject and has
    no API to choose one; its server runs in this process, so the id is set on its record of the object.
    """
    from moto.s3.models import s3_backends

    from localrun.template import ACCOUNT_ID

    stored = s3_backends[ACCOUNT_ID]["aws"].buckets.get(bucket)
    if stored is None:  # not this process's moto: nothing to keep
        return
    for fake in stored.keys.getlist(key, []):
        if fake.version_id == given:
            fake._version_id = recorded


@dataclass
class _Pending:
    """What a save will do once everything is written: temporary file -> target, and files to remove."""

    renames: list[tuple[Path, Path]]
    deletions: list[Path]


def _stage_file(path: Path, body: bytes, pending: _Pending) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_bytes(body)
    pending.renames.append((tmp, path))


def _stage_bucket(lake_dir: Path, s3: Any, bucket: str, pending: _Pending) -> SyncResult:
    """Write every new or changed object beside its file; plan the removal of files whose object is gone."""
    result = SyncResult()
    existing = _lake_files(lake_dir)
    recorded: dict[str, Any] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if ".." in key.split("/") or key.startswith(("/", f"{LOCAL_DIR}/")) or key.endswith(TMP_SUFFIX):
                raise ValueError(f"refusing to write object key {key!r} outside the lake folder")
            response = s3.get_object(Bucket=bucket, Key=key)
            body = response["Body"].read()
            recorded[key] = {
                "metadata": response.get("Metadata", {}),
                "content_type": response.get("ContentType"),
                "version_id": response.get("VersionId"),
            }
            path = lake_dir / key
            existing.pop(key, None)
            if path.exists() and hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(body).digest():
                result.unchanged += 1
                continue
            _stage_file(path, body, pending)
            result.written += 1
    pending.deletions.extend(existing.values())
    result.deleted = len(existing)
    _stage_file(lake_dir / LOCAL_DIR / OBJECTS_FILE, json.dumps(recorded, indent=1, sort_keys=True).encode(), pending)
    return result


def _table_lines(ddb: Any, table: str) -> tuple[bytes, int]:
    items: list[dict[str, Any]] = []
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        items.extend(page.get("Items", []))
    items.sort(key=lambda i: json.dumps(i, sort_keys=True))
    return "".join(json.dumps(i, sort_keys=True) + "\n" for i in items).encode(), len(items)


def save_lake(
    lake_dir: Path, s3: Any, bucket: str, table: tuple[Any, str, Path] | None = None
) -> tuple[SyncResult, int]:
    """Write the bucket and the state table into the lake folder, all or nothing (see the module docstring).

    ``table``: ``(dynamodb client, table name, file)`` of the state table to save with the bucket.

    Returns
    -------
    What the bucket's save did, and how many state items were saved.

    Raises
    ------
    LocalLakeError
        When the folder cannot be written (the previous lake is left as it was).
    """
    outcome = commit_lake(lake_dir, s3, bucket, table)
    _apply_journal(lake_dir)
    return outcome


def commit_lake(
    lake_dir: Path, s3: Any, bucket: str, table: tuple[Any, str, Path] | None = None
) -> tuple[SyncResult, int]:
    """The first half of ``save_lake``: every new file written beside the one it replaces, then the journal (the
    commit point). A process that dies after it leaves a save that ``recover_lake`` finishes at the next start."""
    pending = _Pending([], [])
    try:
        lake_dir.mkdir(parents=True, exist_ok=True)
        result = _stage_bucket(lake_dir, s3, bucket, pending)
        items = 0
        if table is not None:
            ddb, name, state_file = table
            body, items = _table_lines(ddb, name)
            _stage_file(state_file, body, pending)
        _write_journal(lake_dir, pending)
    except OSError as exc:
        for tmp, _ in pending.renames:
            tmp.unlink(missing_ok=True)
        raise LocalLakeError(f"cannot save the lake into {lake_dir}: {exc}; the previous lake is unchanged") from exc
    except BaseException:
        for tmp, _ in pending.renames:
            tmp.unlink(missing_ok=True)
        raise
    return result, items


def _journal_path(lake_dir: Path) -> Path:
    return lake_dir / LOCAL_DIR / JOURNAL_FILE


def _write_journal(lake_dir: Path, pending: _Pending) -> None:
    """The commit point: once the journal exists, the save happens (now, or at the next start)."""
    document = {
        "renames": [[str(tmp.relative_to(lake_dir)), str(path.relative_to(lake_dir))] for tmp, path in pending.renames],
        "deletions": [str(path.relative_to(lake_dir)) for path in pending.deletions],
    }
    journal = _journal_path(lake_dir)
    journal.parent.mkdir(parents=True, exist_ok=True)
    tmp = journal.with_name(journal.name + TMP_SUFFIX)
    tmp.write_text(json.dumps(document))
    os.replace(tmp, journal)


def _apply_journal(lake_dir: Path) -> None:
    journal = _journal_path(lake_dir)
    document = json.loads(journal.read_text())
    for tmp, path in document["renames"]:
        if (lake_dir / tmp).exists():  # already moved by an interrupted apply
            os.replace(lake_dir / tmp, lake_dir / path)
    for path in document["deletions"]:
        (lake_dir / path).unlink(missing_ok=True)
    _prune_empty_dirs(lake_dir)
    journal.unlink()


def recover_lake(lake_dir: Path) -> str | None:
    """Finish or undo a save that was interrupted (see the module docstring); says which, or None.

    Raises
    ------
    LocalLakeError
        When the journal itself is unreadable (the fix is named).
    """
    journal = _journal_path(lake_dir)
    if journal.exists():
        try:
            _apply_journal(lake_dir)
        except (ValueError, KeyError, TypeError) as exc:
            raise LocalLakeError(
                f"{journal} is corrupt ({exc}): the last save was interrupted and cannot be finished. Fix: move "
                f"{lake_dir} aside and run again (the sources are fetched again), or restore it from a backup"
            ) from exc
        return "finished the save the last run had committed but not applied"
    leftovers = [p for p in lake_dir.rglob(f"*{TMP_SUFFIX}") if p.is_file()] if lake_dir.exists() else []
    for path in leftovers:
        path.unlink()
    return f"removed {len(leftovers)} file(s) of a save that never committed" if leftovers else None


def _prune_empty_dirs(root: Path) -> None:
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(path.iterdir()):
            path.rmdir()


def restore_table(path: Path, ddb: Any, table: str) -> int:
    """Load a table's items (DynamoDB JSON lines) into the emulator.

    Raises
    ------
    LocalLakeError
        When a line of the file is not an item (the file and the fix are named).
    """
    if not path.exists():
        return 0
    count = 0
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict) or "pk" not in item or "sk" not in item:
                raise ValueError("not a state item (an object with pk and sk)")
        except ValueError as exc:
            raise LocalLakeError(
                f"the local state file {path} is corrupt at line {number}: {exc}. Fix: restore it from a backup, or "
                f"delete it to start the state afresh (every source is then fetched and compared again; the lake's "
                f"files are kept and adopted)"
            ) from exc
        ddb.put_item(TableName=table, Item=item)
        count += 1
    return count
