"""The handler with the events/modeler_*.json batches: bad records, duplicates, the lock, missing inputs."""

from __future__ import annotations

import json
import time

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from modeler.catalunya.marts import CATALUNYA_MARTS
from modeler.registry import MARTS
from tests.conftest import load_event

POPULATION_STATS_KEY = "marts/reports/population_stats/population_stats.parquet"
# the rebuild lease, a datalake.lease item
LEASE_PK, LEASE_SK = "LOCK#modeler", "LEASE"


def test_bad_records_fail_alone_and_the_good_one_is_modelled(modeler_aws, modeler_handler, lambda_context):
    # GIVEN population staged, and a batch of one valid dataset.staged, one truncated message, one marts.built
    modeler_aws.staging.stage_everything()
    event = load_event("modeler_poison_records.json")

    # WHEN the handler runs
    response = modeler_handler.lambda_handler(event, lambda_context)

    # THEN only the two bad records are reported failed, and the valid one triggered the rebuild
    ids = [r["messageId"] for r in event["Records"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": ids[1]}, {"itemIdentifier": ids[2]}]}
    assert modeler_aws.mart(POPULATION_STATS_KEY).num_rows == 1
    assert [e["event_type"] for e in modeler_aws.events()] == ["marts.built"]


def test_a_batch_of_only_bad_records_fails_whole_and_builds_nothing(modeler_aws, modeler_handler, lambda_context):
    event = load_event("modeler_poison_records.json")
    event["Records"] = event["Records"][1:]
    with pytest.raises(BatchProcessingError):
        modeler_handler.lambda_handler(event, lambda_context)
    assert "Contents" not in modeler_aws.s3.list_objects_v2(Bucket=modeler_aws.bucket, Prefix="marts/")


def test_a_duplicate_delivery_rebuilds_and_writes_nothing(modeler_aws, modeler_handler, lambda_context):
    # GIVEN a first build
    modeler_aws.staging.stage_all()
    modeler_handler.lambda_handler(load_event("modeler_staged_batch.json"), lambda_context)
    modeler_aws.events()
    before = {
        o["Key"]: o["ETag"]
        for o in modeler_aws.s3.list_object_versions(Bucket=modeler_aws.bucket, Prefix="marts/")["Versions"]
    }

    # WHEN the same batch is delivered again (SQS at-least-once)
    response = modeler_handler.lambda_handler(load_event("modeler_staged_batch.json"), lambda_context)

    # THEN every mart is "unchanged" (inputs fingerprinted), and no object or version was written
    assert response == {"batchItemFailures": []}
    (event,) = modeler_aws.events()
    assert event["event_type"] == "marts.built"
    assert event["marts"] == []
    assert event["counts"]["unchanged"] == len(MARTS)
    after = {
        o["Key"]: o["ETag"]
        for o in modeler_aws.s3.list_object_versions(Bucket=modeler_aws.bucket, Prefix="marts/")["Versions"]
    }
    assert after == before


def test_only_marts_whose_inputs_changed_are_rebuilt(modeler_aws, modeler_handler, lambda_context):
    # GIVEN a first build
    modeler_aws.staging.stage_all()
    modeler_handler.lambda_handler(load_event("modeler_staged_batch.json"), lambda_context)
    modeler_aws.events()

    # WHEN only the population staging table changes (the legacy DataUSA shape, 5-year vintage, is added)
    from tests.unit.modeler.staging_builder import POPULATION_LEGACY_JSON, population_rows

    modeler_aws.staging.write("population", population_rows(POPULATION_LEGACY_JSON))
    event = load_event("modeler_staged_batch.json")
    event["Records"] = event["Records"][1:2]  # the datausa/population record
    modeler_handler.lambda_handler(event, lambda_context)

    # THEN the marts that read population were reconsidered; the BLS-only and Catalunya marts were not
    (built,) = modeler_aws.events()
    statuses = {m["name"] for m in built["marts"]}
    assert statuses == {"agg_population_yearly"}  # a new vintage row set; the reports use the 1-year one
    # the four BLS marts and the Catalunya marts that do not read the US population were not rebuilt at all; the
    # four others were rebuilt
    unchanged = 4 + len(CATALUNYA_MARTS)
    assert built["counts"] == {"published": 1, "same_content": 4, "unchanged": unchanged, "skipped": 0, "failed": 0}
    # the preferred vintage did not change, so the reports kept identical content (not rewritten)
    assert len(modeler_aws.versions(POPULATION_STATS_KEY)) == 1
    yearly = modeler_aws.mart("marts/aggregates/agg_population_yearly/agg_population_yearly.parquet").to_pylist()
    assert {r["vintage"] for r in yearly} == {"ACS 1-year Estimate", "ACS 5-year Estimate"}
    assert {r["vintage"] for r in yearly if r["is_preferred_vintage"]} == {"ACS 1-year Estimate"}


def test_a_held_lock_sends_the_batch_back_without_using_up_receives(modeler_aws, modeler_handler, lambda_context):
    # GIVEN another rebuild holds an unexpired lease, and the ModelQueue the batch came from (maxReceiveCount 5)
    modeler_aws.staging.stage_everything()
    modeler_aws.ddb.put_item(
        TableName="test-state",
        Item={
            "pk": {"S": LEASE_PK},
            "sk": {"S": LEASE_SK},
            "owner": {"S": "another-request"},
            "expires_at": {"N": str(int(time.time()) + 300)},
        },
    )
    dlq = modeler_aws.sqs.create_queue(QueueName="odp-dev-model-dlq")["QueueUrl"]
    queue = modeler_aws.sqs.create_queue(
        QueueName="odp-dev-model",
        Attributes={
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:odp-dev-model-dlq", "maxReceiveCount": 5}
            )
        },
    )["QueueUrl"]
    batch = load_event("modeler_staged_batch.json")

    # WHEN the batch finds the lock held more often than maxReceiveCount allows
    for _ in range(7):
        response = modeler_handler.lambda_handler(batch, lambda_context)
        # THEN each time the invocation succeeds (so Lambda deletes the received messages: no receive is counted)
        assert response == {"batchItemFailures": []}

    # AND every time the batch went back to its queue as new messages, delayed; nothing reached the ModelDLQ
    attributes = modeler_aws.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert int(attributes["ApproximateNumberOfMessagesDelayed"]) == 7 * len(batch["Records"])
    dlq_attributes = modeler_aws.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
    assert dlq_attributes["ApproximateNumberOfMessages"] == "0"
    assert "Contents" not in modeler_aws.s3.list_objects_v2(Bucket=modeler_aws.bucket, Prefix="marts/")
    assert modeler_aws.events() == []

    # AND once the lease has expired, the next delivery builds and releases the lock
    modeler_aws.ddb.update_item(
        TableName="test-state",
        Key={"pk": {"S": LEASE_PK}, "sk": {"S": LEASE_SK}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )
    assert modeler_handler.lambda_handler(batch, lambda_context) == {"batchItemFailures": []}
    assert modeler_aws.state_item(LEASE_PK, LEASE_SK) is None


def test_a_held_lock_with_sqs_refusing_fails_the_batch(modeler_aws, modeler_handler, lambda_context):
    """Nothing is lost when the batch cannot be sent back: it fails whole, as before (the queue does not exist)."""
    from modeler.requeue import RequeueError

    modeler_aws.staging.stage_everything()
    modeler_aws.ddb.put_item(
        TableName="test-state",
        Item={
            "pk": {"S": LEASE_PK},
            "sk": {"S": LEASE_SK},
            "owner": {"S": "another-request"},
            "expires_at": {"N": str(int(time.time()) + 300)},
        },
    )
    with pytest.raises(RequeueError, match="odp-dev-model"):
        modeler_handler.lambda_handler(load_event("modeler_staged_batch.json"), lambda_context)


def test_missing_inputs_skip_marts_without_failing(modeler_aws, modeler_handler, lambda_context):
    # GIVEN only the population is staged (no BLS, no Socrata)
    from tests.unit.modeler.staging_builder import population_rows

    modeler_aws.staging.write("population", population_rows())
    event = load_event("modeler_staged_batch.json")
    event["Records"] = event["Records"][1:2]
    modeler_handler.lambda_handler(event, lambda_context)

    # THEN the population marts are built and the others wait for their inputs, with the reason
    (built,) = modeler_aws.events()
    assert {m["name"] for m in built["marts"]} == {"population_stats", "agg_population_yearly"}
    assert built["counts"]["failed"] == 0
    assert "bls_best_year" in built["skipped"]


def test_an_aws_failure_raises_and_announces_stage_failed(modeler_aws, modeler_handler, lambda_context):
    # GIVEN the state table is gone (a broken deploy): the rebuild cannot read or lock
    modeler_aws.staging.stage_everything()
    modeler_aws.ddb.delete_table(TableName="test-state")

    # WHEN a batch arrives THEN the invocation fails and stage.failed says why
    from datalake.state import StateError

    with pytest.raises(StateError):
        modeler_handler.lambda_handler(load_event("modeler_staged_batch.json"), lambda_context)
    (failed,) = modeler_aws.events()
    assert failed["event_type"] == "stage.failed"
    assert failed["stage"] == "modeler"
    assert failed["error_type"] == "StateError"
    assert failed["check"] is None


def test_the_events_files_are_sns_notifications_of_dataset_staged():
    for name in ("modeler_staged_batch.json", "modeler_poison_records.json"):
        for record in load_event(name)["Records"]:
            assert record["eventSource"] == "aws:sqs"
            body = json.loads(record["body"])
            assert body["Type"] == "Notification"
            assert body["TopicArn"].endswith("-pipeline")
    messages = [
        json.loads(json.loads(r["body"])["Message"]) for r in load_event("modeler_staged_batch.json")["Records"]
    ]
    assert {(m["source"], m["dataset"]) for m in messages} == {
        ("bls_bulk", "pr"),
        ("datausa", "population"),
        ("socrata", "9uvn-hv6j"),
    }
