"""What happens to a record whose extraction failed: pure, so the whole table is tested without SQS.

Three things can happen to a failed record:

- ``DEAD_LETTER``: the original body goes to the ExtractDLQ with the reason, and the record counts as done.
  Retrying cannot help (a malformed message, a series or dataset that does not exist), or this was the last
  receive: SQS would move the message to the DLQ itself, with no reason attached.
- ``DEFER``: the source refused for now (the BLS daily quota). The record fails after its visibility timeout is
  raised (15 min, then doubling, by receive count), so it comes back once the quota has reset. It is never dropped.
- ``RETRY``: the record fails, and SQS redelivers it after the queue's visibility timeout.

An AWS call of ours that fails on the last receive is dead-lettered on a best-effort basis: if the DLQ or SNS is
what fails, the record fails and SQS moves it (the logs keep the reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from extractor.domain import deferral_seconds


class Failure(Enum):
    """What kind of failure a record met (see ``extractor.errors`` and ``extractor.failures.failure_of``)."""

    INVALID = "invalid_message"  # the body is not an ExtractRequest
    PERMANENT = "permanent"  # retrying cannot help
    QUOTA = "quota"  # the source refused for now
    TRANSIENT = "transient"  # the source or the network failed after the HTTP retries, or the time ran out
    IN_PROGRESS = "in_progress"  # another invocation holds this unit of work
    AWS = "aws"  # one of our own AWS calls (S3, DynamoDB, SNS, SQS) failed
    UNEXPECTED = "unexpected"  # anything else: a defect; the record fails loudly


class Action(Enum):
    DEAD_LETTER = "dead_letter"
    DEFER = "defer"
    RETRY = "retry"


@dataclass(frozen=True)
class Decision:
    action: Action
    defer_seconds: int = 0  # DEFER: the message's new visibility timeout
    best_effort: bool = False  # DEAD_LETTER: if the dead-lettering itself fails, fail the record for the original error


_ALWAYS = {
    Failure.INVALID: Decision(Action.DEAD_LETTER),
    Failure.PERMANENT: Decision(Action.DEAD_LETTER),
    Failure.IN_PROGRESS: Decision(Action.RETRY),
    Failure.UNEXPECTED: Decision(Action.RETRY),
}
_ON_LAST_RECEIVE = {
    Failure.TRANSIENT: Decision(Action.DEAD_LETTER),
    Failure.AWS: Decision(Action.DEAD_LETTER, best_effort=True),
}


def is_last_receive(receive_count: int, max_receive_count: int) -> bool:
    """Whether SQS moves the message to the DLQ if this receive fails (its ``maxReceiveCount`` is reached)."""
    return receive_count >= max_receive_count


def decide(failure: Failure, receive_count: int, max_receive_count: int) -> Decision:
    """What to do with a record that failed.

    Parameters
    ----------
    failure: what kind of failure it met.
    receive_count: the message's ``ApproximateReceiveCount`` (1 on the first receive).
    max_receive_count: the ExtractQueue's ``maxReceiveCount``.

    Returns
    -------
    The decision. A quota refusal is deferred on every receive, the last one included (it is never dead-lettered
    by the extractor); a transient or AWS failure is retried until its last receive, then dead-lettered.
    """
    if failure in _ALWAYS:
        return _ALWAYS[failure]
    if failure is Failure.QUOTA:
        return Decision(Action.DEFER, defer_seconds=deferral_seconds(receive_count))
    if is_last_receive(receive_count, max_receive_count):
        return _ON_LAST_RECEIVE[failure]
    return Decision(Action.RETRY)
