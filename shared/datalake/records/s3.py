"""S3 event notifications, as the TransformQueue carries them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, Json

from datalake.records._base import Event
from datalake.records.sqs import SqsRecordModel


# -- S3 event notification (TransformQueue bodies) ----------------------------------------------------------------
class S3Bucket(Event):
    name: str
    arn: str | None = None


class S3Object(Event):
    key: str
    size: float | None = Field(default=None, ge=0)
    eTag: str | None = None
    versionId: str | None = None
    sequencer: str | None = None


class S3Message(Event):
    s3SchemaVersion: str | None = None
    configurationId: str | None = None
    bucket: S3Bucket
    object: S3Object


class S3RecordModel(Event):
    eventVersion: str
    eventSource: Literal["aws:s3"]
    awsRegion: str
    eventTime: datetime
    eventName: str
    s3: S3Message


class S3Model(Event):
    Records: list[S3RecordModel]


class S3TestEvent(BaseModel):
    """The first message S3 sends to a queue when a notification is configured."""

    model_config = ConfigDict(defer_build=True)

    Service: str
    Event: Literal["s3:TestEvent"]
    Time: str | None = None
    Bucket: str
    RequestId: str | None = None
    HostId: str | None = None


class S3NotificationRecord(SqsRecordModel):
    """TransformQueue: the body is an S3 event notification, or the one-off s3:TestEvent."""

    body: Json[S3Model | S3TestEvent]  # type: ignore[assignment]
