"""Every sample in events/ is valid JSON and is driven through its handler by some test, and every function has
samples for its triggers (the files `sam local invoke -e` takes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENTS = sorted((ROOT / "events").glob("*.json"))
TEST_SOURCES = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
FUNCTIONS = ("scheduler", "extractor", "transformer", "modeler", "notifier")


@pytest.mark.parametrize("path", EVENTS, ids=lambda p: p.name)
def test_sample_is_json_and_used_by_a_test(path):
    json.loads(path.read_text())
    assert path.name in TEST_SOURCES, f"no test invokes a handler with events/{path.name}"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_has_samples(function):
    assert any(p.name.startswith(f"{function}_") for p in EVENTS), function


def test_sqs_samples_have_lambda_shape():
    for path in EVENTS:
        event = json.loads(path.read_text())
        for record in event.get("Records", []):
            if record.get("eventSource") == "aws:sqs":
                assert {"messageId", "receiptHandle", "body", "attributes", "eventSourceARN"} <= set(record), path.name
