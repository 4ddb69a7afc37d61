"""The failure policy applied to an SQS batch: Powertools' ``BatchProcessor`` with its ``failure_handler`` extended.

A record handler raises to fail its record. This processor sorts the exception (``failure_of``), asks the pure
policy what to do (``extractor.policy.decide``), and does it through the invocation: a dead-lettered record is
reported done, a deferred or retried one is reported failed (``batchItemFailures``), so SQS redelivers it.
"""

from __future__ import annotations

import sys
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from datalake.batch import BatchProcessor, EventType
from datalake.events import PublishError
from datalake.lake import LakeError
from datalake.observability import logger as function_logger
from datalake.state import StateError
from extractor.errors import Deferred, ExtractionError, InvalidMessage, PermanentFailure
from extractor.policy import Action, Failure, decide
from extractor.queues import QueueError
from extractor.service import Invocation, receive_count, request_of
from extractor.telemetry import telemetry

logger = Logger(child=True)

RECORD_LOG_KEYS = ["source", "dataset"]  # appended by the record handler, removed once the policy has acted

_KINDS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], Failure], ...] = (
    (InvalidMessage, Failure.INVALID),
    (PermanentFailure, Failure.PERMANENT),
    (Deferred, Failure.QUOTA),
    (ExtractionError, Failure.TRANSIENT),
    (IdempotencyAlreadyInProgressError, Failure.IN_PROGRESS),
    ((LakeError, StateError, PublishError, QueueError), Failure.AWS),
)


def failure_of(exc: BaseException) -> Failure:
    """The kind of failure an exception is, by its type (never by its message)."""
    return next((kind for types, kind in _KINDS if isinstance(exc, types)), Failure.UNEXPECTED)


class FailurePolicy(BatchProcessor):
    """A ``BatchProcessor`` for one invocation's ExtractQueue batch that dead-letters, defers or retries a record
    whose handler raised.

    A batch whose every record failed (a quota day) is reported record by record, like any partial failure: the
    deferred visibility timeouts then hold, and the function does not count an error for a refusal by the source.

    Parameters
    ----------
    invocation: the batch's invocation, which sends to the DLQ and the queue.
    max_receive_count: the ExtractQueue's ``maxReceiveCount``.
    """

    def __init__(self, invocation: Invocation, max_receive_count: int) -> None:
        super().__init__(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        self.invocation = invocation
        self.max_receive_count = max_receive_count

    def _process_record(self, record: dict) -> Any:
        try:
            return super()._process_record(record)
        finally:
            # the function's own logger, which appended them: a child logger's keys live in its parent's formatter,
            # which a process running several functions (the local runtime) may not have registered for this one
            function_logger.remove_keys(RECORD_LOG_KEYS)

    def failure_handler(self, record: SQSRecord, exception: Any) -> Any:
        """Act on the policy's decision for a record whose handler raised.

        Returns
        -------
        A success entry when the record was dead-lettered (it is done); a failure entry otherwise, including when
        dead-lettering it failed (SQS then redelivers it, so the message is not lost).
        """
        error = exception[1]
        failure = failure_of(error)
        decision = decide(failure, receive_count(record), self.max_receive_count)
        if decision.action is Action.DEAD_LETTER:
            return self._dead_lettered(record, exception, failure, decision.best_effort)
        if decision.action is Action.DEFER:
            self._defer(record, error, decision.defer_seconds)
        else:
            _count_failure(failure, error)
        return super().failure_handler(record, exception)

    def _dead_lettered(self, record: SQSRecord, exception: Any, failure: Failure, best_effort: bool) -> Any:
        error = exception[1]
        if best_effort:
            _count_failure(failure, error)  # said first, so the logs keep the reason if the DLQ fails too
        try:
            outcome = self._dead_letter(record, error, failure, best_effort)
        except Exception:  # the DLQ or the topic refused: the record fails with that error; SQS keeps the message
            return super().failure_handler(record, sys.exc_info())
        if outcome is None:
            return super().failure_handler(record, exception)
        return self.success_handler(record, outcome)

    def _dead_letter(self, record: SQSRecord, error: Any, failure: Failure, best_effort: bool) -> dict | None:
        """The dead-lettered outcome; None when a best-effort dead-lettering failed (the record fails as it was)."""
        if failure is Failure.INVALID:
            return self.invocation.dead_letter(record, None, error)
        if not best_effort:
            return self.invocation.dead_letter(record, request_of(record), error)
        try:
            return self.invocation.dead_letter(record, request_of(record), f"{type(error).__name__}: {error}", "aws")
        except (QueueError, PublishError) as dlq_exc:
            logger.error("could not dead-letter on the last receive", extra={"error": str(dlq_exc)})
            return None

    def _defer(self, record: SQSRecord, error: Any, seconds: int) -> None:
        telemetry.count("ExtractFailures", reason=error.reason_code)
        try:
            self.invocation.defer(record, seconds)
        except QueueError as queue_exc:
            logger.error("could not defer the message", extra={"error": str(queue_exc)})
        logger.warning("request deferred", extra={"reason": str(error), "retry_in_seconds": seconds})


def _count_failure(failure: Failure, error: Any) -> None:
    """Count and log a failure whose record returns to the queue. SQS moves it to the DLQ after
    ``maxReceiveCount`` with no reason attached: the logs keep the reason."""
    if failure is Failure.TRANSIENT:
        telemetry.count("ExtractFailures", reason=error.reason_code)
        logger.warning("request failed, will be retried", extra={"reason": str(error), "error_type": error.reason_code})
    elif failure is Failure.IN_PROGRESS:
        telemetry.count("ExtractFailures", reason="in_progress")
    elif failure is Failure.AWS:
        telemetry.count("ExtractFailures", reason="aws")
        logger.warning(
            "request failed, will be retried", extra={"reason": str(error), "error_type": type(error).__name__}
        )
