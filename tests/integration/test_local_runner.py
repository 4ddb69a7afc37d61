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


def test_a_deferral_set_by_the_handler_is_kept_then_released(local_cloud, tmp_path):
    # GIVEN an extractor that defers its message once (as on a spent BLS quota), then succeeds
    sqs = local_cloud.client("sqs")
    url = local_cloud.queue_urls["ExtractQueue"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 1}))
    attempts = []

    def extractor(event, context):
        record = event["Records"][0]
        attempts.append(record["attributes"]["ApproximateReceiveCount"])
        if len(attempts) == 1:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=900)
            return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
        return {"batchItemFailures": []}

    runner = Runner(local_cloud)
    runner._handlers.update(
        {"ExtractorFunction": extractor, "TransformerFunction": None, "ModelerFunction": None, "NotifierFunction": None}
    )

    # WHEN the pipeline drains, the deferred message stays in flight instead of being retried at once
    runner.drain()
    assert attempts == ["1"]
    assert local_cloud.queue_counts("ExtractQueue") == (0, 1)
    assert runner.stats["ExtractorFunction"].deferred == 1

    # AND it survives into the next run (moto does not), then is processed once the wait is over
    from localrun.redrive import restore_pending, save_pending

    runner.release_deferred()
    assert save_pending(local_cloud, tmp_path)["ExtractQueue"] == 1
    sqs.purge_queue(QueueUrl=url)
    assert restore_pending(local_cloud, tmp_path)["ExtractQueue"] == 1
    runner.drain()
    assert attempts == ["1", "1"]  # a fresh message in the next run's queue
    assert local_cloud.queue_counts("ExtractQueue") == (0, 0)
    assert "DeadLetter" not in str(runner.dead_letters())
