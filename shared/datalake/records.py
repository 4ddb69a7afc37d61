"""Typed SQS records for every queue, built on Powertools' own event models.

Each model validates the message body against our contract, so a record handler receives a typed object or
the record fails (and only that record).
"""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import S3Model, SnsNotificationModel, SqsRecordModel
from pydantic import BaseModel, Json

from datalake.contracts import ExtractRequest


class ExtractRecord(SqsRecordModel):
    """ExtractQueue: the body is an ExtractRequest."""

    body: Json[ExtractRequest]  # type: ignore[assignment]


class S3TestEvent(BaseModel):
    """The first message S3 sends to a queue when a notification is configured."""

    Service: str
    Event: Literal["s3:TestEvent"]
    Time: str | None = None
    Bucket: str
    RequestId: str | None = None
    HostId: str | None = None


class S3NotificationRecord(SqsRecordModel):
    """TransformQueue: the body is an S3 event notification, or the one-off s3:TestEvent."""

    body: Json[S3Model | S3TestEvent]  # type: ignore[assignment]


class SnsEnvelopeRecord(SqsRecordModel):
    """ModelQueue and NotifyQueue: the body is an SNS notification (raw delivery off), Message is raw text."""

    body: Json[SnsNotificationModel]  # type: ignore[assignment]

    @property
    def message(self) -> str:
        return self.body.Message

    @property
    def topic_arn(self) -> str:
        return self.body.TopicArn

    def attribute(self, name: str) -> Any:
        attrs = self.body.MessageAttributes or {}
        value = attrs.get(name)
        return None if value is None else value.Value
