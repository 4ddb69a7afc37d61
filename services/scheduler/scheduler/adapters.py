"""Scheduler adapters: SendMessageBatch with partial-failure retries."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from datalake.aws import client
from datalake.contracts import ExtractRequest
from datalake.state import ConditionFailed, StateError, Table

logger = Logger(child=True)

MAX_SEND_ATTEMPTS = 4


class SendError(RuntimeError):
    """Some ExtractRequests could not be enqueued after every attempt."""


class RunIdTaken(ValueError):
    """A manual request named a run id that an earlier invoke already used: nothing was sent."""


class ClaimError(RuntimeError):
    """The run id could not be claimed in the state table (DynamoDB failed)."""


RUN_CLAIM_SK = "CLAIM"
RUN_CLAIM_DAYS = 400  # longer than any record keyed on a run id (idempotency 7 days, the run ledger 90 days)


def claim_run_id(table: str, run_id: str, seed: str, now: datetime, ddb: Any | None = None) -> None:
    """Claim ``RUN#{run_id}/CLAIM`` before anything is sent, so a run id names one run only.

    The claim is conditional: it succeeds when the run id is new, or when the same trigger claims it again (a
    retried invocation of one scheduled event carries the same event id, ``seed``, and is de-duplicated
    downstream). A run id reused by another invoke would be answered by the extractor's idempotency records for
    seven days and fetch nothing, so it is refused instead.

    Raises
    ------
    RunIdTaken
        When another invoke already claimed the run id.
    ClaimError
        When DynamoDB cannot be reached or refuses for another reason.
    """
    expires = int(now.timestamp()) + RUN_CLAIM_DAYS * 86400
    try:
        Table(table, ddb).call(
            "put_item",
            f"cannot claim run id {run_id} in {table}",
            Item={
                "pk": {"S": f"RUN#{run_id}"},
                "sk": {"S": RUN_CLAIM_SK},
                "seed": {"S": seed},
                "claimed_at": {"S": now.isoformat()},
                "expires_at": {"N": str(expires)},
            },
            ConditionExpression="attribute_not_exists(pk) OR seed = :seed",
            ExpressionAttributeValues={":seed": {"S": seed}},
        )
    except ConditionFailed as exc:
        raise RunIdTaken(f"run_id {run_id} was already used by another invoke; omit run_id to get a fresh one") from exc
    except StateError as exc:
        raise ClaimError(str(exc)) from exc


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
