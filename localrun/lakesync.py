"""Keeps the local lake folder (.lake/) and the emulator in step across runs.

moto keeps its state in memory, so each run restores the bucket and the state table from the folder before the
pipeline starts, and writes them back when it ends. The folder mirrors the bucket's keys, so
``.lake/marts/reports/bls_best_year/`` holds what the bucket would hold. Files are rewritten only when their
bytes changed, and files whose object is gone (a mirrored bulk file deleted upstream) are removed.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCAL_DIR = "_local"  # runtime state beside the lake's keys; not part of the bucket
OBJECTS_FILE = "objects.json"


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
    recorded = json.loads(meta_path.read_text()) if meta_path.exists() else {}
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


def save_bucket(lake_dir: Path, s3: Any, bucket: str) -> SyncResult:
    """Write the bucket's current objects into the lake folder; remove files whose object is gone."""
    result = SyncResult()
    lake_dir.mkdir(parents=True, exist_ok=True)
    existing = _lake_files(lake_dir)
    recorded: dict[str, Any] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if ".." in key.split("/") or key.startswith(("/", f"{LOCAL_DIR}/")):
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
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp-sync")
            tmp.write_bytes(body)
            tmp.replace(path)
            result.written += 1
    for path in existing.values():
        path.unlink()
        result.deleted += 1
    _prune_empty_dirs(lake_dir)
    meta_path = lake_dir / LOCAL_DIR / OBJECTS_FILE
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(recorded, indent=1, sort_keys=True))
    return result


def _prune_empty_dirs(root: Path) -> None:
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(path.iterdir()):
            path.rmdir()


def restore_table(path: Path, ddb: Any, table: str) -> int:
    """Load a table's items (DynamoDB JSON lines) into the emulator."""
    if not path.exists():
        return 0
    count = 0
    for line in path.read_text().splitlines():
        if line.strip():
            ddb.put_item(TableName=table, Item=json.loads(line))
            count += 1
    return count


def save_table(path: Path, ddb: Any, table: str) -> int:
    items: list[dict[str, Any]] = []
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        items.extend(page.get("Items", []))
    items.sort(key=lambda i: json.dumps(i, sort_keys=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(i, sort_keys=True) + "\n" for i in items))
    return len(items)
