"""The extractor in the local runtime: the template's queues (batch size 50, redrive to the ExtractDLQ), moto's
server, and the bundled replay served over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest

from datalake.catalog import load_catalog
from datalake.contracts import ScheduleRequest, Source, Trigger
from localrun.replay import ReplayServer
from localrun.runner import Runner
from scheduler.domain import chunks, plan_run
from tests.unit.extractor.support import API_KEY, REPLAY, ServedBodies, bound_handler, response_objects

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


@pytest.fixture
def replay():
    with ReplayServer(REPLAY) as server:
        yield server


@pytest.fixture
def runner(local_cloud, replay):
    """A runner whose only function is the extractor, bound to the local cloud's resources and the replay."""
    environment = local_cloud.function_environment("ExtractorFunction")
    with bound_handler(None, replay, environment=environment) as handler:
        runner = Runner(local_cloud)
        runner._handlers.update(
            {
                "SchedulerFunction": None,
                "ExtractorFunction": handler.lambda_handler,
                "TransformerFunction": None,
                "ModelerFunction": None,
                "NotifierFunction": None,
            }
        )
        local_cloud.client("sqs").purge_queue(QueueUrl=local_cloud.queue_urls["TransformQueue"])  # the s3:TestEvent
        yield runner


def schedule(cloud, request: ScheduleRequest | None, seed: str) -> list[str]:
    """What the scheduler sends for a run (its own planning code), onto the template's ExtractQueue."""
    plan = plan_run(load_catalog(), request, NOW, seed)
    sqs = cloud.client("sqs")
    for batch in chunks(plan.requests):
        sqs.send_message_batch(
            QueueUrl=cloud.queue_urls["ExtractQueue"],
            Entries=[{"Id": str(i), "MessageBody": r.model_dump_json()} for i, r in enumerate(batch)],
        )
    return plan.datasets


def transform_messages(cloud) -> list[dict]:
    sqs, url = cloud.client("sqs"), cloud.queue_urls["TransformQueue"]
    found = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        found.extend(json.loads(m["Body"]) for m in got)
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
        )
    return found


def landing_versions(cloud) -> list[tuple[str, str]]:
    s3, bucket = cloud.client("s3"), cloud.ref("LakeBucket")
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="landing/")
    return sorted((v["Key"], v["VersionId"]) for page in pages for v in page.get("Versions", []))


@pytest.mark.parametrize(("keyed", "calls"), [(True, 2), (False, 3)])
def test_68_series_cost_2_api_calls_with_a_key_and_3_without(local_cloud, replay, runner, keyed, calls):
    # GIVEN 68 catalog series in the queue (Lambda delivers them in batches of 50, as the template says)
    served = ServedBodies()
    replay.add_hook(served)
    series = [e.dataset for e in load_catalog().by_source(Source.BLS_API)][:68]
    assert len(series) == 68
    if keyed:
        local_cloud.client("ssm").put_parameter(
            Name=local_cloud.function_environment("ExtractorFunction")["BLS_API_KEY_PARAM"],
            Value=API_KEY,
            Type="SecureString",
        )
    request = ScheduleRequest(trigger=Trigger.MANUAL, sources=[Source.BLS_API], datasets=series)
    schedule(local_cloud, request, "calls")

    # WHEN the extractor drains the queue
    runner.drain()

    # THEN the replay's counter shows ceil(68/50) = 2 keyed POSTs, or ceil(68/25) = 3 keyless ones
    assert replay.counts["bls_api"] == calls == math.ceil(68 / (50 if keyed else 25))
    queries = [r.json() for r in replay.log if r.endpoint == "bls_api"]
    assert sorted(s for q in queries for s in q["seriesid"]) == sorted(series)
    assert all(("registrationkey" in q) is keyed for q in queries)
    stats = runner.stats["ExtractorFunction"]
    assert (stats.invocations, stats.received, stats.succeeded, stats.failed) == (2, 68, 68, 0)
    assert len(transform_messages(local_cloud)) == 68  # one manifest per series
    # AND each POST's response is stored once, byte for byte as the replay sent it: 2 or 3 objects for 68 manifests
    s3, bucket = local_cloud.client("s3"), local_cloud.ref("LakeBucket")
    stored = response_objects(s3, bucket)
    assert len(stored) == calls and sorted(stored.values()) == sorted(served.bodies)
    landed = [key for key, _ in landing_versions(local_cloud)]
    manifests = [k for k in landed if k.endswith(".manifest.json")]
    assert len(manifests) == 68 and len(landed) == 68 + calls
    selected = set()
    for key in manifests:
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        selected.update((p["key"], p["select_series"]) for p in manifest["parts"])
        assert [p["select_series"] for p in manifest["parts"]] == [manifest["dataset"]]
    assert {k for k, _ in selected} == set(stored) and len(selected) == 68
    # AND the key is in no stored object (body or metadata)
    if keyed:
        for key in landed:
            obj = s3.get_object(Bucket=bucket, Key=key)
            assert API_KEY.encode() not in obj["Body"].read() and API_KEY not in json.dumps(obj["Metadata"])

    # WHEN the same 68 series are extracted again the next day, the sources unchanged
    before = landing_versions(local_cloud)
    schedule(local_cloud, request, "calls-again")
    runner.drain()

    # THEN BLS is asked again at the same cost, and nothing at all is written (no response object, no manifest)
    assert replay.counts["bls_api"] == 2 * calls
    assert landing_versions(local_cloud) == before
    assert transform_messages(local_cloud) == []


def test_the_full_catalog_twice_second_run_lands_nothing_and_sends_nothing_downstream(local_cloud, replay, runner):
    s3 = local_cloud.client("s3")
    bucket = local_cloud.ref("LakeBucket")

    def versions() -> list[tuple[str, str]]:
        response = s3.list_object_versions(Bucket=bucket, Prefix="landing/")
        return sorted((v["Key"], v["VersionId"]) for v in response.get("Versions", []))

    # GIVEN a first daily run over the whole catalog
    datasets = schedule(local_cloud, None, "first-day")
    runner.drain()
    first = versions()
    manifests = [m for m in transform_messages(local_cloud) if "Records" in m]
    # every dataset of the catalog was committed by a manifest, and nothing was dead-lettered
    assert len(manifests) == len(datasets)
    assert runner.dead_letters() == {}

    # WHEN the next day's run finds the sources unchanged
    calls_before = replay.request_count()
    schedule(local_cloud, None, "second-day")
    runner.drain()

    # THEN the sources were asked again, but nothing was written and no transform was triggered
    assert replay.request_count() > calls_before
    assert versions() == first
    assert transform_messages(local_cloud) == []
    assert local_cloud.queue_counts("ExtractQueue") == (0, 0)
