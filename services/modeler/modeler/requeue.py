"""SQS adapter: a batch that finds the rebuild lease held goes back to its queue as new messages.

Returning the batch as failed would count a receive per attempt, and a long rebuild (or two queued behind it)
would push waiting work into the ModelDLQ after ``maxReceiveCount`` tries. Sent again, the messages start over at
receive 0 and wait out a delay instead; the rebuild they ask for is idempotent, so a duplicate is harmless.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from datalake.aws import client

SQS_BATCH = 10
SQS_MAX_DELAY_SECONDS = 900


class RequeueError(RuntimeError):
    """SQS refused a message; the batch must fail instead, so that nothing is lost."""


def requeue(records: list[dict[str, Any]], delay_seconds: int, sqs: Any | None = None) -> int:
    """Send each SQS record's body back to the queue it came from, delayed.

    Parameters
    ----------
    records
        Raw SQS event records (``body``, ``eventSourceARN``, ``messageId``).
    delay_seconds
        How long the new messages stay invisible (SQS allows up to 900).

    Returns
    -------
    The number of messages sent.

    Raises
    ------
    RequeueError
        When a queue URL cannot be resolved or a message is not accepted.
    """
    sqs = sqs or client("sqs")
    delay = max(0, min(SQS_MAX_DELAY_SECONDS, int(delay_seconds)))
    by_queue: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_queue.setdefault(record["eventSourceARN"], []).append(record)
    sent = 0
    for arn, queued in by_queue.items():
        _, _, _, _, account, name = arn.split(":")
        try:
            url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            for start in range(0, len(queued), SQS_BATCH):
                chunk = queued[start : start + SQS_BATCH]
                response = sqs.send_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "MessageBody": r["body"], "DelaySeconds": delay} for i, r in enumerate(chunk)
                    ],
                )
                if response.get("Failed"):
                    raise RequeueError(f"{arn} refused {len(response['Failed'])} message(s): {response['Failed'][0]}")
                sent += len(chunk)
        except (ClientError, BotoCoreError) as exc:
            raise RequeueError(f"cannot send the batch back to {arn}: {exc}") from exc
    return sent
