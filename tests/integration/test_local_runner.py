"""The local runner honours batch sizes, partial batch failures and maxReceiveCount → DLQ."""

from __future__ import annotations

import json

import pytest

from localrun.runner import Runner

pytestmark = pytest.mark.integration


def test_a_failing_message_is_retried_alone_then_dead_lettered(local_cloud):
    # GIVEN five extract requests, one of which always fails, and a stand-in extractor
    sqs = local_cloud.client("sqs")
    url = local_cloud.queue_urls["ExtractQueue"]
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": i, "poison": i == 2}))
    batches: list[list[int]] = []

    def extractor(event, context):
        numbers = [json.loads(r["body"])["n"] for r in event["Records"]]
        batches.append(numbers)
        assert context.get_remaining_time_in_millis() > 0
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in event["Records"] if json.loads(r["body"])["poison"]
            ]
        }

    runner = Runner(local_cloud)
    runner._handlers.update(
        {"ExtractorFunction": extractor, "TransformerFunction": None, "ModelerFunction": None, "NotifierFunction": None}
    )

    # WHEN the runner drains the pipeline
    runner.drain()

    # THEN the first batch holds all five (batch size 50), and the poison message is retried alone
    max_receives = local_cloud.queues["ExtractQueue"].max_receive_count
    assert sorted(batches[0]) == [0, 1, 2, 3, 4]
    assert batches[1:] == [[2]] * (max_receives - 1)
    # AND after maxReceiveCount receives it sits in the DLQ, while its neighbours were processed once
    dead = runner.dead_letters()
    assert [json.loads(m["Body"])["n"] for m in dead["ExtractDLQ"]] == [2]
    stats = runner.stats["ExtractorFunction"]
    assert (stats.succeeded, stats.failed, stats.invocations) == (4, max_receives, max_receives)
    assert local_cloud.queue_counts("ExtractQueue") == (0, 0)


def test_a_crashing_handler_fails_the_whole_batch(local_cloud):
    sqs = local_cloud.client("sqs")
    url = local_cloud.queue_urls["TransformQueue"]
    sqs.purge_queue(QueueUrl=url)  # the s3:TestEvent from configuring the notification
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    calls = []

    def transformer(event, context):
        calls.append(len(event["Records"]))
        raise RuntimeError("boom")

    runner = Runner(local_cloud)
    runner._handlers.update(
        {
            "ExtractorFunction": None,
            "TransformerFunction": transformer,
            "ModelerFunction": None,
            "NotifierFunction": None,
        }
    )
    runner.drain()
    assert calls == [1] * local_cloud.queues["TransformQueue"].max_receive_count
    assert runner.stats["TransformerFunction"].crashed_batches == len(calls)
    assert len(runner.dead_letters()["TransformDLQ"]) == 1
