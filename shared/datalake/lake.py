"""The data-lake bucket adapter: put, get, list and delete objects, turning ClientError into LakeError."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from datalake.aws import client


class LakeError(RuntimeError):
    """An S3 operation on the lake failed (transient or not); the unit of work must fail and retry."""


class ObjectMissing(LakeError):
    """The object (or the requested version) does not exist."""


@dataclass(frozen=True)
class PutResult:
    key: str
    etag: str
    version_id: str | None


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: Any
    metadata: dict[str, str]
    version_id: str | None = None


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}


class LakeStore:
    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        self.bucket = bucket
        self._s3 = s3

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = client("s3")
        return self._s3

    def put_bytes(
        self,
        key: str,
        body: bytes,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> PutResult:
        try:
            response = self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=body, Metadata=metadata or {}, ContentType=content_type
            )
        except (ClientError, BotoCoreError) as exc:
            raise LakeError(f"cannot write s3://{self.bucket}/{key}: {exc}") from exc
        return PutResult(key=key, etag=response.get("ETag", "").strip('"'), version_id=response.get("VersionId"))

    def upload_fileobj(
        self,
        key: str,
        fileobj: IO[bytes],
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> None:
        try:
            self.s3.upload_fileobj(
                fileobj, self.bucket, key, ExtraArgs={"Metadata": metadata or {}, "ContentType": content_type}
            )
        except (ClientError, BotoCoreError) as exc:
            raise LakeError(f"cannot upload s3://{self.bucket}/{key}: {exc}") from exc

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        return self.open(key, version_id).read()

    def open(self, key: str, version_id: str | None = None) -> Any:
        """A streaming body (file-like) for the object; read it in chunks to keep memory bounded."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            return self.s3.get_object(**kwargs)["Body"]
        except ClientError as exc:
            if _is_missing(exc):
                raise ObjectMissing(f"s3://{self.bucket}/{key} does not exist") from exc
            raise LakeError(f"cannot read s3://{self.bucket}/{key}: {exc}") from exc
        except BotoCoreError as exc:
            raise LakeError(f"cannot read s3://{self.bucket}/{key}: {exc}") from exc

    def head(self, key: str) -> ObjectInfo | None:
        try:
            r = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise LakeError(f"cannot stat s3://{self.bucket}/{key}: {exc}") from exc
        except BotoCoreError as exc:
            raise LakeError(f"cannot stat s3://{self.bucket}/{key}: {exc}") from exc
        return ObjectInfo(
            key=key,
            size=r["ContentLength"],
            etag=r["ETag"].strip('"'),
            last_modified=r["LastModified"],
            metadata=r.get("Metadata", {}),
            version_id=r.get("VersionId"),
        )

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    yield ObjectInfo(
                        key=obj["Key"],
                        size=obj["Size"],
                        etag=obj["ETag"].strip('"'),
                        last_modified=obj["LastModified"],
                        metadata={},
                    )
        except (ClientError, BotoCoreError) as exc:
            raise LakeError(f"cannot list s3://{self.bucket}/{prefix}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise LakeError(f"cannot delete s3://{self.bucket}/{key}: {exc}") from exc

    def copy(self, source_key: str, dest_key: str) -> None:
        try:
            self.s3.copy_object(Bucket=self.bucket, Key=dest_key, CopySource={"Bucket": self.bucket, "Key": source_key})
        except (ClientError, BotoCoreError) as exc:
            raise LakeError(f"cannot copy s3://{self.bucket}/{source_key} to {dest_key}: {exc}") from exc


def download(lake: Any, key: str, path: str, chunk_bytes: int = 8 << 20) -> None:
    """Stream object ``key`` of ``lake`` (a ``LakeStore``, or anything with its ``open``) to a local file, one chunk
    in memory at a time: a large staging file is then read row group by row group, never whole.

    Raises
    ------
    ObjectMissing
        When the object does not exist.
    LakeError
        When reading it or writing the file fails.
    """
    body = lake.open(key)
    try:
        with open(path, "wb") as out:
            while chunk := body.read(chunk_bytes):
                out.write(chunk)
    except (BotoCoreError, ClientError, OSError) as exc:
        raise LakeError(f"reading {key} failed: {exc}") from exc
    finally:
        body.close()
