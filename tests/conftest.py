"""Shared fixtures. The environment is set before any handler is imported: settings are read at cold start."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's convention; not a secret
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "STAGE": "dev",
    "POWERTOOLS_SERVICE_NAME": "test",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "OpenDataPipeline",
    "LAKE_BUCKET": "test-lake",
    "STATE_TABLE": "test-state",
    "IDEMPOTENCY_TABLE": "test-idempotency",
    "PIPELINE_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:test-pipeline",
    "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:test-alerts",
    "EXTRACT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-extract",
    "EXTRACT_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-extract-dlq",
    "CONTACT_EMAIL": "tests@example.org",
    "BLS_API_KEY_PARAM": "/test/bls/api-key",
    "SOCRATA_APP_TOKEN_PARAM": "/test/socrata/app-token",
    "WEBHOOK_URL_PARAM": "/test/notifier/webhook-url",
    "GLUE_DATABASE": "opendata_test",
}
for _key, _value in TEST_ENV.items():
    os.environ[_key] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_ms: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def load_event(name: str) -> dict[str, Any]:
    """An events/*.json file, exactly as `sam local invoke -e events/<name>` would pass it."""
    return json.loads((EVENTS / name).read_text())


@pytest.fixture(autouse=True)
def _reset_powertools() -> None:
    """Fresh metrics and a cold start for every test; cached AWS clients forget their endpoint."""
    from aws_lambda_powertools.metrics.provider import cold_start

    from datalake.aws import reset_clients
    from datalake.observability import metrics

    metrics.clear_metrics()
    cold_start.is_cold_start = True
    reset_clients()
    yield
    metrics.clear_metrics()
