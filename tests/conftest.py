"""Shared fixtures. The environment is set before any handler is imported: settings are read at cold start."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.env import TEST_ENV  # shared with the benchmark, which must not import pytest
from tests.fault_table import print_table

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

for _key, _value in TEST_ENV.items():
    os.environ[_key] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)


# Tests that share a costly module- or session-scoped result run in one xdist worker (``make unit`` runs
# ``pytest -n 2 --dist loadgroup``): by default each module is a group, so a module fixture is computed once; these
# modules also share the clean reference runs of ``tests.support.local_run.reference_lake``.
SHARED_GROUPS = {
    "tests/e2e/test_fault_matrix.py": "fault-references",
    "tests/integration/test_delivery_faults.py": "fault-references",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    del config
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            module = item.nodeid.split("::", 1)[0]
            item.add_marker(pytest.mark.xdist_group(SHARED_GROUPS.get(module, module)))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The fault table, from the rows any test recorded (in the controller only, under xdist)."""
    del exitstatus
    if not hasattr(config, "workerinput"):
        print_table(terminalreporter)


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
