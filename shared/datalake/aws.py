"""Cached boto3 client factories. One client per service per process; AWS_ENDPOINT_URL is honoured.

Adapters take a client as an optional argument, so tests pass a moto-backed client or a fake; in Lambda the
cached one is reused across invocations of a warm container.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Adaptive retries with a bounded number of attempts: AWS-side throttling is retried inside the SDK.
_CONFIG = Config(retries={"max_attempts": 5, "mode": "adaptive"}, connect_timeout=5, read_timeout=60)


@cache
def client(service: str) -> Any:
    """The process-wide boto3 client for an AWS service (s3, sqs, sns, dynamodb, ssm, glue, ...)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None  # boto3 reads it too; explicit for older SDKs
    return boto3.session.Session().client(service, endpoint_url=endpoint, config=_CONFIG)


@cache
def resource(service: str) -> Any:
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.session.Session().resource(service, endpoint_url=endpoint, config=_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests and the local runtime switch endpoints)."""
    client.cache_clear()
    resource.cache_clear()
