"""Typed event records for every trigger: SQS records whose bodies are our contracts.

The field names and types mirror Powertools' parser models (``SqsRecordModel``, ``SnsNotificationModel``,
``S3Model``, ``EventBridgeModel``) one for one, so code reads exactly as it would with them. They are declared
here because importing ``aws_lambda_powertools.utilities.parser.models`` builds every event model Powertools
knows (API Gateway, Kafka, Kinesis, ...), which costs more cold start than the DESIGN §9 bar allows
(≤ 1.2× boto3 + Logger/Metrics/Tracer); BatchProcessor accepts any pydantic model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Json

from datalake.contracts import ExtractRequest


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


# -- SQS (the Lambda event of every queue) ------------------------------------------------------------------------
class SqsAttributesModel(_Event):
    ApproximateReceiveCount: str
    ApproximateFirstReceiveTimestamp: datetime
    SenderId: str
    SentTimestamp: datetime
    MessageDeduplicationId: str | None = None
    MessageGroupId: str | None = None
    SequenceNumber: str | None = None
    AWSTraceHeader: str | None = None
    DeadLetterQueueSourceArn: str | None = None


class SqsMsgAttributeModel(_Event):
    stringValue: str | None = None
    binaryValue: str | None = None
    stringListValues: list[str] = []
    binaryListValues: list[str] = []
    dataType: str


class SqsRecordModel(_Event):
    messageId: str
    receiptHandle: str
    body: Any
    attributes: SqsAttributesModel
    messageAttributes: dict[str, SqsMsgAttributeModel] = {}
    md5OfBody: str
    md5OfMessageAttributes: str | None = None
    eventSource: Literal["aws:sqs"]
    eventSourceARN: str
    awsRegion: str

    @property
    def receive_count(self) -> int:
        return int(self.attributes.ApproximateReceiveCount)

    @property
    def queue_url(self) -> str:
        """The queue's URL, derived from the event source ARN (for ChangeMessageVisibility)."""
        _, _, _, region, account, name = self.eventSourceARN.split(":", 5)
        return f"https://sqs.{region}.amazonaws.com/{account}/{name}"


# -- S3 event notification (TransformQueue bodies) ----------------------------------------------------------------
class S3Bucket(_Event):
    name: str
    arn: str | None = None


class S3Object(_Event):
    key: str
    size: float | None = Field(default=None, ge=0)
    eTag: str | None = None
    versionId: str | None = None
    sequencer: str | None = None


class S3Message(_Event):
    s3SchemaVersion: str | None = None
    configurationId: str | None = None
    bucket: S3Bucket
    object: S3Object


class S3RecordModel(_Event):
    eventVersion: str
    eventSource: Literal["aws:s3"]
    awsRegion: str
    eventTime: datetime
    eventName: str
    s3: S3Message


class S3Model(_Event):
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


# -- SNS notification inside SQS (ModelQueue and NotifyQueue bodies, raw delivery off) ----------------------------
class SnsMsgAttributeModel(_Event):
    Type: str
    Value: str


class SnsNotificationModel(_Event):
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


# -- EventBridge scheduled event (the scheduler's trigger) --------------------------------------------------------
class EventBridgeModel(_Event):
    version: str
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any]


# -- Our records ----------------------------------------------------------------------------------------------------
class ExtractRecord(SqsRecordModel):
    """ExtractQueue: the body is an ExtractRequest."""

    body: Json[ExtractRequest]  # type: ignore[assignment]


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
