"""SQS records (the Lambda event of every queue), and the ExtractQueue's."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Json

from datalake.contracts import ExtractRequest
from datalake.records._base import Event


# -- SQS (the Lambda event of every queue) ------------------------------------------------------------------------
class SqsAttributesModel(Event):
    ApproximateReceiveCount: str
    ApproximateFirstReceiveTimestamp: datetime
    SenderId: str
    SentTimestamp: datetime
    MessageDeduplicationId: str | None = None
    MessageGroupId: str | None = None
    SequenceNumber: str | None = None
    AWSTraceHeader: str | None = None
    DeadLetterQueueSourceArn: str | None = None


class SqsMsgAttributeModel(Event):
    stringValue: str | None = None
    binaryValue: str | None = None
    stringListValues: list[str] = []
    binaryListValues: list[str] = []
    dataType: str


class SqsRecordModel(Event):
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


class ExtractRecord(SqsRecordModel):
    """ExtractQueue: the body is an ExtractRequest."""

    body: Json[ExtractRequest]  # type: ignore[assignment]
