"""Scheduler adapters: SendMessageBatch with partial-failure retries."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from datalake.aws import client
from datalake.contracts import ExtractRequest

logger = Logger(child=True)

MAX_SEND_ATTEMPTS = 4


class SendError(RuntimeError):
    """Some ExtractRequests could not be enqueued after every attempt."""


def _entry(index: int, request: ExtractRequest) -> dict[str, Any]:
    return {
        "Id": str(index),
        "MessageBody": request.model_dump_json(),
        "MessageAttributes": {
            "source": {"DataType": "String", "StringValue": request.source.value},
            "run_id": {"DataType": "String", "StringValue": request.run_id},
        },
    }


def send_batch(
    queue_url: str, batch: list[ExtractRequest], sqs: Any | None = None, backoff_seconds: float = 0.2
) -> int:
    """Send up to 10 requests with SendMessageBatch, resending only the entries SQS reports as failed.

    SQS can accept part of a batch and refuse the rest (throttling, internal errors); the SDK does not retry
    those entries, so they are resent here a bounded number of times.

    Raises
    ------
    SendError
        When entries still fail after MAX_SEND_ATTEMPTS, or a failure is the sender's fault.
    """
    sqs = sqs or client("sqs")
    pending = {str(i): _entry(i, r) for i, r in enumerate(batch)}
    for attempt in range(1, MAX_SEND_ATTEMPTS + 1):
        try:
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=list(pending.values()))
        except (ClientError, BotoCoreError) as exc:
            raise SendError(f"SendMessageBatch to {queue_url} failed: {exc}") from exc
        for ok in response.get("Successful", []):
            pending.pop(ok["Id"], None)
        failed = response.get("Failed", [])
        if not pending:
            return len(batch)
        sender_faults = [f for f in failed if f.get("SenderFault")]
        if sender_faults:
            raise SendError(f"SQS refused {len(sender_faults)} entries: {sender_faults[0].get('Message')}")
        logger.warning(
            "SendMessageBatch partial failure, resending",
            extra={
                "attempt": attempt,
                "failed": len(pending),
                "codes": sorted({f.get("Code", "") for f in failed}),
            },
        )
        time.sleep(backoff_seconds * 2 ** (attempt - 1))
    raise SendError(f"{len(pending)} of {len(batch)} requests not enqueued after {MAX_SEND_ATTEMPTS} attempts")
