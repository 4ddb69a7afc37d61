"""Which landing an S3 notification names. Light on purpose: the handler imports it at cold start."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field

from datalake.layout import decode_event_key, is_manifest_key, parse_landing_key


class UnexpectedNotification(ValueError):
    """A notification the TransformQueue should never carry (another bucket, another key, another event)."""


class LandingRef(BaseModel):
    """One committed landing: its manifest object. Idempotency is keyed on ``bucket/key#etag``."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    bucket: str
    key: str
    etag: str
    version_id: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def idempotency_key(self) -> str:
        return f"{self.bucket}/{self.key}#{self.etag}"


def landing_from_notification(record: Any, lake_bucket: str) -> LandingRef:
    """A LandingRef from one S3 event record (Powertools ``S3RecordModel``), with the key URL-decoded.

    Raises
    ------
    UnexpectedNotification
        When the record is not an ObjectCreated event of a landing manifest in the lake bucket.
    """
    if not record.eventName.startswith("ObjectCreated"):
        raise UnexpectedNotification(f"not an ObjectCreated event: {record.eventName}")
    bucket = record.s3.bucket.name
    if bucket != lake_bucket:
        raise UnexpectedNotification(f"notification from bucket {bucket!r}, expected {lake_bucket!r}")
    s3_object = record.s3.object
    if s3_object is None:
        raise UnexpectedNotification("notification without an object")
    key = decode_event_key(s3_object.key)
    if not is_manifest_key(key):
        raise UnexpectedNotification(f"{key!r} is not a landing manifest")
    try:
        parse_landing_key(key)
    except ValueError as exc:
        raise UnexpectedNotification(str(exc)) from exc
    return LandingRef(bucket=bucket, key=key, etag=(s3_object.eTag or "").strip('"'), version_id=s3_object.versionId)
