"""SNS notifications inside SQS, as the ModelQueue and the NotifyQueue carry them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, Json

from datalake.records._base import Event
from datalake.records.sqs import SqsRecordModel


# -- SNS notification inside SQS (ModelQueue and NotifyQueue bodies, raw delivery off) ----------------------------
class SnsMsgAttributeModel(Event):
    Type: str
    Value: str


class SnsNotificationModel(Event):
    Type: Literal["Notification"]
    MessageId: str
    TopicArn: str
    Message: str
    Timestamp: datetime
    Subject: str | None = None
    MessageAttributes: dict[str, SnsMsgAttributeModel] | None = None
    UnsubscribeUrl: str | None = Field(default=None, alias="UnsubscribeURL")
    SignatureVersion: str | None = None
    Signature: str | None = None
    SigningCertUrl: str | None = Field(default=None, alias="SigningCertURL")


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
