"""Settings fail loudly at cold start; secrets never reach a log line."""

from __future__ import annotations

import io
import json
import logging

import pytest

from datalake.observability import REDACTED, RedactingFormatter, register_secret
from datalake.settings import ExtractorSettings, SchedulerSettings, SettingsError, load_settings


def test_missing_resource_names_are_all_named():
    with pytest.raises(SettingsError) as raised:
        load_settings(SchedulerSettings, {"STAGE": "dev", "POWERTOOLS_SERVICE_NAME": "s", "AWS_REGION": "us-east-1"})
    assert "EXTRACT_QUEUE_URL" in str(raised.value) and "PIPELINE_TOPIC_ARN" in str(raised.value)


def test_malformed_values_are_refused():
    env = {
        "STAGE": "staging",
        "POWERTOOLS_SERVICE_NAME": "s",
        "AWS_REGION": "us-east-1",
        "EXTRACT_QUEUE_URL": "https://q",
        "PIPELINE_TOPIC_ARN": "not-an-arn",
    }
    with pytest.raises(SettingsError) as raised:
        load_settings(SchedulerSettings, env)
    assert "STAGE" in str(raised.value) and "PIPELINE_TOPIC_ARN" in str(raised.value)


def test_extractor_settings_default_to_the_public_endpoints():
    import os

    settings = load_settings(ExtractorSettings, dict(os.environ))
    assert settings.bls_api_url.startswith("https://api.bls.gov/publicAPI/v2/")
    assert settings.contact_email == "tests@example.org"


def test_formatter_redacts_registered_secrets_and_secret_shaped_fields():
    secret = "k3y-0f-the-bureau-1234567890"
    register_secret(secret)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter())
    log = logging.getLogger("redaction-test")
    log.addHandler(handler)
    log.propagate = False
    log.warning(
        "calling with %s",
        secret,
        extra={
            "registrationkey": "anything",
            "url": f"https://x/?key={secret}",
            "echo": f"Invalid key {secret.upper()}",
        },
    )
    line = stream.getvalue()
    assert secret not in line
    record = json.loads(line)
    assert record["registrationkey"] == REDACTED
    assert REDACTED in record["url"] and REDACTED in record["message"]
    assert record["echo"] == f"Invalid key {REDACTED}"  # a source echoing the key in another case
