"""The handlers' cold start loads Powertools' batch utility without its forty parser models (``datalake.batch``)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import json, os, sys
sys.path[:0] = [sys.argv[1] + "/shared", *(sys.argv[1] + "/services/" + s for s in sys.argv[2:]), sys.argv[1]]
from tests.env import TEST_ENV
os.environ.update(TEST_ENV)
import pydantic  # the contracts import it first, which is what made Powertools load every parser model
import importlib
for service in sys.argv[2:]:
    importlib.import_module(service + ".handler")
from datalake.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch import BatchProcessor as Original
print(json.dumps({
    "parser_models": "aws_lambda_powertools.utilities.parser.models" in sys.modules,
    "same_class": BatchProcessor is Original,
    "same_pydantic": sys.modules["pydantic"] is pydantic,
}))
"""


def test_the_handlers_import_the_batch_utility_without_every_parser_model():
    services = ["scheduler", "extractor", "transformer", "modeler", "notifier"]
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT), *services], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "parser_models": False,
        "same_class": True,
        "same_pydantic": True,
    }
