"""What can go wrong in an extraction, sorted by what must happen to the message.

- ``PermanentFailure``: retrying cannot help (the series or dataset does not exist, the request is malformed, the
  answer carries our own credential so its body cannot be stored as received). The message goes to the ExtractDLQ
  with its reason and is reported done.
- ``Deferred``: the source refused for now (BLS daily quota, ``REQUEST_NOT_PROCESSED``). The record fails and
  comes back after a growing visibility timeout; it is never dropped.
- ``TransientFailure``: the source or the network failed after the HTTP retries (5xx, 429, timeouts, resets,
  a truncated or non-JSON body), or the time budget ran out. The record fails and SQS redelivers it.

``reason_code`` is a low-cardinality metric dimension; the message is for people.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(child=True)


class ExtractionError(RuntimeError):
    reason_code = "error"


class PermanentFailure(ExtractionError):
    reason_code = "permanent"


class SeriesNotFound(PermanentFailure):
    reason_code = "series_not_found"


class DatasetNotFound(PermanentFailure):
    reason_code = "dataset_not_found"


class InvalidRequest(PermanentFailure):
    reason_code = "invalid_request"


class SecretInResponse(PermanentFailure):
    """The source's answer carries a secret we sent (BLS echoes a registration key in its messages).

    Landing stores a body exactly as received or not at all, and a secret is never stored: such a body is refused,
    not rewritten.
    """

    reason_code = "secret_in_response"


class Deferred(ExtractionError):
    reason_code = "quota"


class TransientFailure(ExtractionError):
    reason_code = "transient"


class SourceUnavailable(TransientFailure):
    reason_code = "source_unavailable"


class BadPayload(TransientFailure):
    reason_code = "bad_payload"


# A payload the extractor's checks refuse is landed anyway on the request's last receive, so the raw bytes survive
# and the transformer quarantines them with its reason (docs/architecture.md: bad input is quarantined), instead of the
# request dying in the DLQ.
BAD_PAYLOAD_LANDED = "bad payload landed on the last receive, for quarantine"


def bad_payload_kept(exc: BadPayload, what: str) -> str:
    """Log that a bad payload is landed as it is; returns the manifest warning that says so, with the reason."""
    logger.warning(BAD_PAYLOAD_LANDED, extra={"reason": str(exc), "part": what})
    return f"{BAD_PAYLOAD_LANDED}: {exc}"


class TimeBudgetExceeded(TransientFailure):
    reason_code = "time_budget"


class PayloadTooLarge(PermanentFailure):
    reason_code = "payload_too_large"


class InvalidMessage(PermanentFailure):
    """The message body is not an ExtractRequest: dead-lettered as it is, with the validation problems."""

    reason_code = "invalid_message"
