"""``datalake.startup``: what every handler imports first. The shared libraries are frozen out of the collector's
walks, and Powertools' event classes load one by one, while every name still resolves as Powertools defines it."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import gc, importlib, json, os, sys
sys.path[:0] = [sys.argv[1] + "/shared", *(sys.argv[1] + "/services/" + s for s in sys.argv[2:]), sys.argv[1]]
from tests.env import TEST_ENV
os.environ.update(TEST_ENV)
for service in sys.argv[2:]:
    importlib.import_module(service + ".handler")
PACKAGE = "aws_lambda_powertools.utilities.data_classes."
loaded = sorted(m.rsplit(".", 1)[-1] for m in sys.modules if m.startswith(PACKAGE))
frozen = gc.get_freeze_count()
from aws_lambda_powertools.utilities.data_classes import S3Event, SQSRecord
from aws_lambda_powertools.utilities.data_classes.s3_event import S3Event as S3EventItself
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord as SQSRecordItself
from aws_lambda_powertools.utilities.data_classes import ALBEvent  # not in the map: the package's own __init__ runs
from aws_lambda_powertools.utilities.data_classes.alb_event import ALBEvent as ALBEventItself
import aws_lambda_powertools.utilities.data_classes as package
try:
    package.NoSuchEvent
    unknown = "resolved"
except AttributeError as exc:
    unknown = str(exc)
print(json.dumps({
    "loaded": loaded,
    "api_gateway_loaded_at_import": "api_gateway_proxy_event" in loaded,
    "frozen": frozen,
    "same_classes": [S3Event is S3EventItself, SQSRecord is SQSRecordItself, ALBEvent is ALBEventItself],
    "all_exported": sorted(package.__all__) == sorted(n for n in package.__all__ if hasattr(package, n)),
    "unknown": unknown,
}))
"""


def _probe(*services: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT), *services], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_light_handlers_load_only_the_event_classes_the_batch_utility_needs_and_every_name_still_resolves():
    seen = _probe("scheduler", "extractor", "notifier")
    assert seen["api_gateway_loaded_at_import"] is False
    # the batch utility's own imports (SQS, Kinesis, DynamoDB streams, Kafka), what they import, and the scheduler's
    # EventBridge event: nothing else
    assert set(seen["loaded"]) <= {
        "common",
        "shared_functions",
        "sqs_event",
        "s3_event",
        "sns_event",
        "dynamo_db_stream_event",
        "kafka_event",
        "kinesis_stream_event",
        "cloud_watch_logs_event",
        "event_source",
        "event_bridge_event",
    }
    assert seen["same_classes"] == [True, True, True]
    assert seen["all_exported"] is True
    assert seen["unknown"] == "module 'aws_lambda_powertools.utilities.data_classes' has no attribute 'NoSuchEvent'"


def test_the_objects_of_the_shared_libraries_are_frozen_once_loaded():
    # boto3, Powertools and pydantic leave tens of thousands of long-lived objects; frozen, no collection walks them
    assert _probe("scheduler")["frozen"] > 20_000
