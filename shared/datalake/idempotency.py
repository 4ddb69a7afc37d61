"""Powertools idempotency, persisted in the DynamoDB idempotency table (TTL on ``expiration``)."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

from datalake.aws import client


@cache
def persistence_layer(table_name: str) -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client("dynamodb"))


def idempotency_config(event_key: str, expires_after_seconds: int = 7 * 24 * 3600) -> IdempotencyConfig:
    """Config keyed on a business key inside the idempotent function's payload (never the SQS messageId)."""
    return IdempotencyConfig(
        event_key_jmespath=event_key,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=expires_after_seconds,
        use_local_cache=True,
    )
