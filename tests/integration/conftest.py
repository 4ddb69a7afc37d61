"""Fixtures for tests against moto's server with the template's resources."""

from __future__ import annotations

import pytest

from localrun.cloud import LocalCloud, MotoServer


@pytest.fixture
def moto_server():
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def local_cloud(moto_server, monkeypatch) -> LocalCloud:
    """The template's resources on a fresh moto server; AWS clients in this process point at it."""
    for key, value in {"AWS_ENDPOINT_URL": moto_server.endpoint}.items():
        monkeypatch.setenv(key, value)
    return LocalCloud(moto_server.endpoint, parameter_overrides={"AlertEmail": "inbox@example.org"}).create()
