"""The failure policy on its own: the pure decision table, the sorting of exceptions, and the batch processor acting
on a decision through a fake invocation (no AWS, no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from datalake.batch import process_partial_response
from datalake.events import PublishError
from datalake.lake import LakeError
from datalake.state import ConditionFailed, StateError
from extractor.errors import (
    BadPayload,
    Deferred,
    InvalidMessage,
    PayloadTooLarge,
    SeriesNotFound,
    SourceUnavailable,
    TimeBudgetExceeded,
)
from extractor.failures import FailurePolicy, failure_of
from extractor.policy import Action, Decision, Failure, decide
from extractor.queues import QueueError
from tests.unit.extractor.support import request, sqs_record

MAX = 8  # the ExtractQueue's maxReceiveCount


@pytest.mark.parametrize(
    ("failure", "receive_count", "expected"),
    [
        (Failure.INVALID, 1, Decision(Action.DEAD_LETTER)),
        (Failure.PERMANENT, 1, Decision(Action.DEAD_LETTER)),
        (Failure.PERMANENT, MAX, Decision(Action.DEAD_LETTER)),
        (Failure.TRANSIENT, 1, Decision(Action.RETRY)),
        (Failure.TRANSIENT, MAX - 1, Decision(Action.RETRY)),
        (Failure.TRANSIENT, MAX, Decision(Action.DEAD_LETTER)),
        (Failure.TRANSIENT, MAX + 3, Decision(Action.DEAD_LETTER)),  # a queue whose redrive policy was raised later
        (Failure.AWS, MAX - 1, Decision(Action.RETRY)),
        (Failure.AWS, MAX, Decision(Action.DEAD_LETTER, best_effort=True)),
        (Failure.IN_PROGRESS, 1, Decision(Action.RETRY)),
        (Failure.IN_PROGRESS, MAX, Decision(Action.RETRY)),
        (Failure.UNEXPECTED, MAX, Decision(Action.RETRY)),
        (Failure.QUOTA, 1, Decision(Action.DEFER, defer_seconds=900)),
        (Failure.QUOTA, 2, Decision(Action.DEFER, defer_seconds=1800)),
        (Failure.QUOTA, MAX, Decision(Action.DEFER, defer_seconds=42_300)),  # never dead-lettered: capped at 11 h 45
    ],
)
def test_the_decision_for_each_kind_of_failure_and_receive(failure, receive_count, expected):
    assert decide(failure, receive_count, MAX) == expected


def test_a_quota_refusal_waits_twice_as_long_each_receive_until_the_cap():
    waits = [decide(Failure.QUOTA, n, MAX).defer_seconds for n in range(1, 9)]
    assert waits == [900, 1800, 3600, 7200, 14400, 28800, 42300, 42300]


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (InvalidMessage("invalid ExtractRequest: dataset: bad"), Failure.INVALID),
        (SeriesNotFound("Series does not exist"), Failure.PERMANENT),
        (PayloadTooLarge("too large"), Failure.PERMANENT),
        (Deferred("REQUEST_NOT_PROCESSED"), Failure.QUOTA),
        (SourceUnavailable("HTTP 503 after retries"), Failure.TRANSIENT),
        (BadPayload("not JSON"), Failure.TRANSIENT),
        (TimeBudgetExceeded("time budget exhausted"), Failure.TRANSIENT),
        (IdempotencyAlreadyInProgressError("in progress"), Failure.IN_PROGRESS),
        (LakeError("SlowDown"), Failure.AWS),
        (ConditionFailed("lost a race"), Failure.AWS),
        (StateError("throttled"), Failure.AWS),
        (PublishError("SNS down"), Failure.AWS),
        (QueueError("SQS down"), Failure.AWS),
        (KeyError("a defect"), Failure.UNEXPECTED),
    ],
)
def test_exceptions_are_sorted_by_type(error, failure):
    assert failure_of(error) is failure


class FakeInvocation:
    """What the processor acts through: it records the dead-letterings and deferrals, and can refuse them."""

    def __init__(self, dlq_error: Exception | None = None, defer_error: Exception | None = None) -> None:
        self.dead: list[tuple[str, str | None, str, str | None]] = []
        self.deferred: list[tuple[str, int]] = []
        self.dlq_error, self.defer_error = dlq_error, defer_error

    def dead_letter(self, record, request, error, error_type=None) -> dict[str, Any]:
        if self.dlq_error is not None:
            raise self.dlq_error
        self.dead.append((record.message_id, request and request.dataset, str(error), error_type))
        return {"outcome": "dead_lettered"}

    def defer(self, record, seconds: int) -> None:
        self.deferred.append((record.message_id, seconds))
        if self.defer_error is not None:
            raise self.defer_error


def run_batch(invocation: FakeInvocation, errors: list[Exception], receive_count: int = 1) -> set[str]:
    """A batch of one record per error, each record's handler raising its error; returns the failed message ids."""
    records = [
        sqs_record(request("datausa", "population").model_dump_json(), f"m-{i}", receive_count=receive_count)
        for i in range(len(errors))
    ]
    raised = dict(zip((r["messageId"] for r in records), errors, strict=True))

    def handler(record):
        raise raised[record.message_id]

    response = process_partial_response(
        event={"Records": records}, record_handler=handler, processor=FailurePolicy(invocation, MAX)
    )
    return {f["itemIdentifier"] for f in response["batchItemFailures"]}


def test_a_permanent_failure_is_dead_lettered_and_done_while_its_neighbours_retry_or_defer():
    invocation = FakeInvocation()
    errors = [SeriesNotFound("Series does not exist"), SourceUnavailable("HTTP 503"), Deferred("quota"), KeyError("x")]
    assert run_batch(invocation, errors) == {"m-1", "m-2", "m-3"}
    assert invocation.dead == [("m-0", "population", "Series does not exist", None)]
    assert invocation.deferred == [("m-2", 900)]


def test_on_the_last_receive_transient_and_aws_failures_are_dead_lettered_with_their_reason():
    invocation = FakeInvocation()
    assert run_batch(invocation, [SourceUnavailable("HTTP 503"), LakeError("SlowDown")], receive_count=MAX) == set()
    assert invocation.dead == [
        ("m-0", "population", "HTTP 503", None),
        ("m-1", "population", "LakeError: SlowDown", "aws"),
    ]


def test_an_invalid_message_is_dead_lettered_without_a_request():
    invocation = FakeInvocation()
    assert run_batch(invocation, [InvalidMessage("invalid ExtractRequest: dataset: bad")]) == set()
    assert invocation.dead == [("m-0", None, "invalid ExtractRequest: dataset: bad", None)]


@pytest.mark.parametrize("refusal", [QueueError("DLQ down"), PublishError("SNS down")])
def test_a_record_the_dlq_or_topic_refuses_fails_so_the_message_is_not_lost(refusal):
    for error, receive_count in ((SeriesNotFound("gone"), 1), (SourceUnavailable("503"), MAX), (LakeError("x"), MAX)):
        assert run_batch(FakeInvocation(dlq_error=refusal), [error], receive_count) == {"m-0"}


def test_a_deferral_sqs_refuses_still_fails_the_record():
    invocation = FakeInvocation(defer_error=QueueError("SQS down"))
    assert run_batch(invocation, [Deferred("quota")], receive_count=3) == {"m-0"}
    assert invocation.deferred == [("m-0", 3600)]
