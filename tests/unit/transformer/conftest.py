"""Fixtures of the transformer's tests: moto AWS in-process (no sockets) and a fresh idempotency cache."""

from __future__ import annotations

import pytest

from tests.unit.transformer.support import transformer_aws


@pytest.fixture
def aws():
    with transformer_aws() as kit:
        yield kit


@pytest.fixture(autouse=True)
def _fresh_idempotency_cache():
    """The persistence layer is built once per process (as in Lambda); its in-memory cache must not leak between
    tests that reuse an event file."""
    import os

    from datalake.idempotency import persistence_layer

    layer = persistence_layer(os.environ["IDEMPOTENCY_TABLE"])
    cache = getattr(layer, "_cache", None)
    if cache is not None:
        cache.clear()
    yield
