"""SQS adapter: dead-letter a permanently failed request with its reason; defer a quota-limited one; send a request
back to the ExtractQueue (the continuation of a paged extraction, or a record postponed for lack of time)."""

from __future__ import annotations

import re
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from datalake.aws import client
from datalake.contracts import ExtractRequest
from extractor.domain import queue_name_of

logger = Logger(child=True)

REASON_LIMIT = 1000
# SQS refuses a whole message whose body or String attribute value holds a character outside this set (XML 1.0's);
# a reason can carry any text (a field name of a malformed body, a source's message), so it is made to fit.
_REFUSED_BY_SQS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def attribute_text(value: str, limit: int = REASON_LIMIT) -> str:
    """``value`` as SQS takes it in a String attribute: at most ``limit`` characters, each one SQS refuses replaced
    by U+FFFD (the replacement character)."""
    return _REFUSED_BY_SQS.sub("\ufffd", value[:limit])


class QueueError(RuntimeError):
    """An SQS call failed; the record fails and SQS redelivers it."""


class ExtractQueues:
    def __init__(self, dlq_url: str, queue_url: str, sqs: Any | None = None) -> None:
        self.dlq_url = dlq_url
        self.extract_queue_url = queue_url
        self._sqs = sqs
        self._urls: dict[str, str] = {}

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            self._sqs = client("sqs")
        return self._sqs

    def dead_letter(self, body: str, reason: str, error_type: str, attributes: dict[str, str]) -> str:
        """Send the original message body to the ExtractDLQ, with ``failure_reason`` and ``error_type``.

        Raises
        ------
        QueueError
            When the DLQ refuses it: the record must then fail, so the message is not lost.
        """
        message_attributes = {
            "failure_reason": {"DataType": "String", "StringValue": attribute_text(reason) or error_type},
            "error_type": {"DataType": "String", "StringValue": attribute_text(error_type)},
        }
        for name, value in attributes.items():
            if value:
                message_attributes[name] = {"DataType": "String", "StringValue": attribute_text(value)}
        try:
            response = self.sqs.send_message(
                QueueUrl=self.dlq_url, MessageBody=body, MessageAttributes=message_attributes
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(f"cannot send to the ExtractDLQ {self.dlq_url}: {exc}") from exc
        return response["MessageId"]

    def send(self, request: ExtractRequest) -> str:
        """Send a request to the ExtractQueue as a new message (its receive count starts again).

        Raises
        ------
        QueueError
            When SQS refuses.
        """
        return self.send_body(request.model_dump_json())

    def send_body(self, body: str) -> str:
        """Send a message body to the ExtractQueue as it is (a postponed record).

        Raises
        ------
        QueueError
        """
        try:
            return self.sqs.send_message(QueueUrl=self.extract_queue_url, MessageBody=body)["MessageId"]
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(f"cannot send to the ExtractQueue {self.extract_queue_url}: {exc}") from exc

    def queue_url(self, queue_arn: str) -> str:
        if queue_arn not in self._urls:
            account, name = queue_name_of(queue_arn)
            try:
                self._urls[queue_arn] = self.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                    "QueueUrl"
                ]
            except (ClientError, BotoCoreError) as exc:
                raise QueueError(f"cannot resolve the URL of {queue_arn}: {exc}") from exc
        return self._urls[queue_arn]

    def defer(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        """Keep a message invisible for ``seconds`` (it fails now and comes back then).

        Raises
        ------
        QueueError
            When SQS refuses; the message then returns after the queue's own visibility timeout.
        """
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url(queue_arn), ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(f"cannot defer a message of {queue_arn}: {exc}") from exc
