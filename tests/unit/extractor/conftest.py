"""Fixtures of the extractor's tests: moto in-process, the bundled replay on 127.0.0.1, the handler bound to both."""

from __future__ import annotations

import pytest
from moto import mock_aws

from localrun.replay import ReplayServer
from tests.unit.extractor.support import REPLAY, bind_handler, create_test_aws


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    """The production retry policy with short waits, so retry tests take seconds (Retry-After still honoured)."""
    from extractor import http

    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.05)
    monkeypatch.setattr(http, "BACKOFF_JITTER", 0.05)


@pytest.fixture
def aws():
    with mock_aws():
        yield create_test_aws()


@pytest.fixture
def replay():
    with ReplayServer(REPLAY) as server:
        yield server


@pytest.fixture
def extractor(aws, replay, monkeypatch):
    """The extractor handler, pointed at moto and the bundled replay."""
    return bind_handler(monkeypatch, replay)
