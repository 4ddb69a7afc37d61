"""SendMessageBatch partial failures are resent; sender faults and exhausted retries raise."""

from __future__ import annotations

import pytest

from datalake.contracts import ExtractRequest, Source
from scheduler.adapters import MAX_SEND_ATTEMPTS, SendError, send_batch


def requests(n: int) -> list[ExtractRequest]:
    return [
        ExtractRequest(run_id="20261121T080000Z-0123abcd", source=Source.BLS_API, dataset=f"LNS1400000{i}")
        for i in range(n)
    ]


class FlakySqs:
    """Fails the given entry ids on the first N calls, then accepts everything."""

    def __init__(self, fail_ids: set[str], failing_calls: int, sender_fault: bool = False) -> None:
        self.fail_ids, self.failing_calls, self.sender_fault = fail_ids, failing_calls, sender_fault
        self.calls: list[list[str]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:  # noqa: N803 - boto3's names
        ids = [e["Id"] for e in Entries]
        self.calls.append(ids)
        failing = len(self.calls) <= self.failing_calls
        failed = [i for i in ids if failing and i in self.fail_ids]
        return {
            "Successful": [{"Id": i} for i in ids if i not in failed],
            "Failed": [
                {"Id": i, "Code": "InternalError", "SenderFault": self.sender_fault, "Message": "boom"} for i in failed
            ],
        }


def test_partial_failures_are_resent_alone():
    sqs = FlakySqs(fail_ids={"3", "7"}, failing_calls=2)
    assert send_batch("url", requests(10), sqs=sqs, backoff_seconds=0) == 10
    assert sqs.calls == [[str(i) for i in range(10)], ["3", "7"], ["3", "7"]]


def test_persistent_failures_raise_after_bounded_attempts():
    sqs = FlakySqs(fail_ids={"1"}, failing_calls=99)
    with pytest.raises(SendError, match="1 of 3 requests not enqueued"):
        send_batch("url", requests(3), sqs=sqs, backoff_seconds=0)
    assert len(sqs.calls) == MAX_SEND_ATTEMPTS


def test_sender_fault_raises_at_once():
    sqs = FlakySqs(fail_ids={"0"}, failing_calls=99, sender_fault=True)
    with pytest.raises(SendError, match="refused"):
        send_batch("url", requests(2), sqs=sqs, backoff_seconds=0)
    assert len(sqs.calls) == 1
