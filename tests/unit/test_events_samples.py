"""Every sample in events/ is valid JSON and is driven through its handler by some test, and every function has
samples for its triggers (the files `sam local invoke -e` takes)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENTS = sorted((ROOT / "events").glob("*.json"))
FUNCTIONS = ("scheduler", "extractor", "transformer", "modeler", "notifier")


def loaded_events() -> set[str]:
    """The file names tests pass, as string literals, to ``load_event`` (or to a helper of theirs that does), read
    from the code itself: a name in a comment or a docstring does not count."""
    names = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                names.update(
                    arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                )
    return {name for name in names if name.endswith(".json")}


LOADED = loaded_events()


@pytest.mark.parametrize("path", EVENTS, ids=lambda p: p.name)
def test_sample_is_json_and_used_by_a_test(path):
    json.loads(path.read_text())
    assert path.name in LOADED, f"no test passes events/{path.name} to load_event (or a helper that loads it)"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_has_samples(function):
    assert any(p.name.startswith(f"{function}_") for p in EVENTS), function


def test_sqs_samples_have_lambda_shape():
    for path in EVENTS:
        event = json.loads(path.read_text())
        for record in event.get("Records", []):
            if record.get("eventSource") == "aws:sqs":
                assert {"messageId", "receiptHandle", "body", "attributes", "eventSourceARN"} <= set(record), path.name
