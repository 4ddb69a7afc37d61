"""Notifier fixtures: the state table and the alerts topic on moto (in-process), with an inbox that captures
what the topic's email subscription would deliver."""

from __future__ import annotations

import io
import json
import os
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

import pytest
from moto import mock_aws

from tests.aws_builders import capture_topic, clients, create_state_table, drain_queue

ALERTS_INBOX = "test-alerts-inbox"
# The events/notifier_*.json samples come from a stack "opendata", stage dev.
SAMPLE_STACK = {"RESOURCE_PREFIX": "opendata-dev", "LAKE_BUCKET": "opendata-dev-lake-123456789012"}


@dataclass
class NotifierAws:
    ddb: Any
    sqs: Any
    ssm: Any
    inbox_url: str
    handler: Any
    settings: Any  # NotifierSettings of the stack the samples come from
    scope: ExitStack

    def compose(self, **ports: Any) -> Any:
        """The notifier of the sample stack on moto, with the given ports replaced by fakes; the handler serves it
        until the test ends. Returns the composed ``Notifier`` (its ``clock`` can be set)."""
        from notifier.service import build_notifier

        service = build_notifier(self.settings)
        service.ports = replace(service.ports, **ports)
        return self.scope.enter_context(self.handler.notifier.use(service))

    def inbox(self) -> list[dict[str, str]]:
        """Every message the alerts topic delivered since the last call: {"subject", "body"}."""
        envelopes = [json.loads(m["Body"]) for m in drain_queue(self.sqs, self.inbox_url)]
        return [{"subject": e.get("Subject"), "body": e["Message"]} for e in envelopes]

    def items(self, prefix: str) -> list[dict[str, Any]]:
        from datalake.state import from_item

        items = self.ddb.scan(TableName=os.environ["STATE_TABLE"])["Items"]
        return [from_item(i) for i in items if i["pk"]["S"].startswith(prefix)]


@pytest.fixture
def notifier_aws():
    """moto with the notifier's resources; the handler serves a notifier composed afresh for each test, for the
    stack the samples come from (``compose`` replaces ports with fakes)."""
    with mock_aws(), ExitStack() as scope:
        ddb, sns, sqs, ssm = clients("dynamodb", "sns", "sqs", "ssm")
        create_state_table(ddb, os.environ["STATE_TABLE"])
        alerts = os.environ["ALERTS_TOPIC_ARN"].rsplit(":", 1)[1]
        topic, inbox_url = capture_topic(sns, sqs, alerts, ALERTS_INBOX, raw=False)  # the email sees the envelope
        assert topic == os.environ["ALERTS_TOPIC_ARN"]
        from datalake.settings import NotifierSettings, load_settings
        from notifier import handler

        kit = NotifierAws(
            ddb=ddb,
            sqs=sqs,
            ssm=ssm,
            inbox_url=inbox_url,
            handler=handler,
            settings=load_settings(NotifierSettings, {**os.environ, **SAMPLE_STACK}),
            scope=scope,
        )
        kit.compose()
        yield kit


class CapturedLogs:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def captured_logs():
    """Every log line the notifier writes during the test."""
    from datalake.observability import logger

    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)
    try:
        yield CapturedLogs(stream)
    finally:
        logger.registered_handler.setStream(previous)
