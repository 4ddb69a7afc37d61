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


# Fixtures that start a server on 127.0.0.1 (the replay of the sources, moto's server): a test using one is marked
# ``sockets``, and ``make test-fast`` (``--no-sockets``) leaves it out.
SOCKET_FIXTURES = {"replay", "moto_server", "local_cloud", "releases", "missing_series_replay"}


class SocketBlocked(RuntimeError):
    """A test opened a socket under ``--no-sockets``: mark it ``sockets`` (it belongs to ``make test``)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-sockets",
        action="store_true",
        help="refuse every socket, even on 127.0.0.1, and leave out the tests marked sockets (make test-fast)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--no-sockets"):
        import socket

        def refuse(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
            raise SocketBlocked(f"a socket was opened under --no-sockets ({args[0] if args else ''})")

        for method in ("bind", "connect", "connect_ex"):
            setattr(socket.socket, method, refuse)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SOCKET_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.sockets)
    # The modules with slow tests (local runs) go first: ``make unit`` hands whole modules to 2 workers in this order
    # (``--dist loadscope``), so the long ones start early and the short ones fill in around them, not after.
    slow_modules = {item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in slow_modules)
    if config.getoption("--no-sockets"):
        kept = [item for item in items if item.get_closest_marker("sockets") is None]
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("sockets")])
        items[:] = kept


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
