"""Fixtures of the extractor's tests: moto in-process, the bundled replay on 127.0.0.1, the handler composed on both."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from moto import mock_aws

from localrun.replay import ReplayServer
from tests.unit.extractor.support import REPLAY, bound_handler, create_test_aws


@pytest.fixture
def aws():
    with mock_aws():
        yield create_test_aws()


@pytest.fixture
def replay():
    with ReplayServer(REPLAY) as server:
        yield server


@pytest.fixture
def bind(aws):
    """``bind(replay, environment=None, read_timeout=None, **ports)``: the handler, serving until the test ends an
    extractor composed on moto and that replay server (``ports`` replaces some of its ports)."""
    with ExitStack() as stack:
        yield lambda replay, *args, **kwargs: stack.enter_context(bound_handler(aws, replay, *args, **kwargs))


@pytest.fixture
def extractor(bind, replay):
    """The extractor handler, composed on moto and the bundled replay."""
    return bind(replay)
