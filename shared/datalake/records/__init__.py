"""Typed event records for every trigger: SQS records whose bodies are our contracts.

The field names and types mirror Powertools' parser models (``SqsRecordModel``, ``SnsNotificationModel``,
``S3Model``, ``EventBridgeModel``) one for one, so code reads exactly as it would with them. They are declared
here because importing ``aws_lambda_powertools.utilities.parser.models`` builds every event model Powertools
knows (API Gateway, Kafka, Kinesis, ...), which costs more cold start than the cold-import bar of ``make bench``
allows (bench/README.md); BatchProcessor accepts any pydantic model.

Each trigger's models live in their own module (``sqs``, ``s3``, ``sns``, ``eventbridge``), loaded on first use of
one of its names, so a function defines only the models of its own trigger at cold start (a pydantic class costs
about 1.3 ms to define; the scheduler needs 2 of 16).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "SqsAttributesModel": "sqs",
    "SqsMsgAttributeModel": "sqs",
    "SqsRecordModel": "sqs",
    "ExtractRecord": "sqs",
    "S3Bucket": "s3",
    "S3Object": "s3",
    "S3Message": "s3",
    "S3RecordModel": "s3",
    "S3Model": "s3",
    "S3TestEvent": "s3",
    "S3NotificationRecord": "s3",
    "SnsMsgAttributeModel": "sns",
    "SnsNotificationModel": "sns",
    "SnsEnvelopeRecord": "sns",
    "EventBridgeModel": "eventbridge",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
