"""Moto resources shaped like the template's declarations, for tests that build their own AWS inside ``mock_aws``."""

from __future__ import annotations

from typing import Any


def create_state_table(ddb: Any, name: str) -> str:
    """The state table: ``pk``/``sk`` strings, on demand (as ``StateTable`` in template.yaml)."""
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name
