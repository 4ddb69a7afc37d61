"""Hostile SQS, S3 and SNS event bodies, through the shared record models and each queue-driven handler (moto
in-process, no sockets): a bad message is refused on its own, with a reason, and writes nothing. It never fails
the invocation (which would fail its batch neighbours too) and never reaches an S3 key."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from pydantic import ValidationError

from datalake.contracts import parse_pipeline_event
from datalake.records import ExtractRecord, S3NotificationRecord, S3TestEvent, SnsEnvelopeRecord
from tests.aws_builders import clients
from tests.property.strategies import json_values

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:hostile"
FEWER = settings(
    max_examples=20,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def sqs_record(body: str, message_id: str = "m-hostile") -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1795248005000",
            "SenderId": "123456789012",
            "ApproximateFirstReceiveTimestamp": "1795248005100",
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1",
    }


def s3_body(key: str, bucket: str = "test-lake", event: str = "ObjectCreated:Put") -> str:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-21T08:00:05.000Z",
        "eventName": event,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": {"key": key, "eTag": "0" * 32}},
    }
    return json.dumps({"Records": [record]})


def sns_body(message: str, event_type: str = "dataset.staged") -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "00000000-0000-4000-8000-000000000001",
            "TopicArn": os.environ["PIPELINE_TOPIC_ARN"],
            "Message": message,
            "Timestamp": "2026-11-21T08:00:05.000Z",
            "MessageAttributes": {"event_type": {"Type": "String", "Value": event_type}},
        }
    )


HOSTILE_KEYS = [
    "landing/../marts/reports/x.manifest.json",
    "landing%2F..%2F..%2Fmarts%2Fx.manifest.json",
    "landing/datausa/..%2F..%2Fstaging/x.manifest.json",
    "landing/datausa/population/ingest_date%3D2026-11-21/x.manifest.json",
    "landing/ftp/x/y.manifest.json",
    "staging/population/part-x.parquet",
    "landing/bls_api/" + "A" * 5000 + "/x.manifest.json",
    "landing/datausa/ünï/x.manifest.json",
    "",
]
DEEP = "[" * 5000 + "]" * 5000
bodies = st.one_of(
    st.text(max_size=60),
    json_values.map(json.dumps),
    st.sampled_from(
        [
            DEEP,
            '{"Records": ' + DEEP + "}",
            "\x00",
            "null",
            "[]",
            '{"Records": []}',
            "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
        ]
    ),
    st.sampled_from(HOSTILE_KEYS).map(s3_body),
    st.builds(sns_body, st.one_of(st.text(max_size=40), json_values.map(json.dumps), st.just(DEEP))),
    st.fixed_dictionaries(
        {
            "run_id": st.sampled_from(["20261121T080000Z-0a1b2c3d", "x"]),
            "source": st.sampled_from(["bls_api", "ftp"]),
            "dataset": st.sampled_from(["../../etc", "LNS14000000", "a/b", "ü" * 70]),
        }
    ).map(json.dumps),
)


# -- the shared record models ------------------------------------------------------------------------------------


@given(body=bodies)
@example(
    body=s3_body("landing/datausa/population/ingest_date%3D2026-11-21/20261121T080000Z-aaaaaaaaaaaa.manifest.json")
)
def test_the_record_models_accept_a_contract_or_refuse_with_a_validation_error(body):
    from transformer.landing import UnexpectedNotification, landing_from_notification

    record = sqs_record(body)
    for model in (ExtractRecord, S3NotificationRecord, SnsEnvelopeRecord):
        try:
            parsed = model.model_validate(record)
        except ValidationError as exc:
            assert exc.errors(), model
            continue
        if model is ExtractRecord:
            assert "/" not in parsed.body.dataset and ".." not in parsed.body.dataset
        elif model is S3NotificationRecord and not isinstance(parsed.body, S3TestEvent):
            for s3 in parsed.body.Records:
                try:
                    landing = landing_from_notification(s3, "test-lake")
                except UnexpectedNotification as exc:
                    assert str(exc)
                    continue
                pieces = landing.key.split("/")
                assert pieces[0] == "landing" and ".." not in pieces and landing.key.endswith(".manifest.json")
        elif model is SnsEnvelopeRecord:
            try:
                parse_pipeline_event(parsed.message)
            except ValidationError:
                pass


# -- each handler -------------------------------------------------------------------------------------------------


@pytest.fixture
def hostile_aws(monkeypatch) -> Iterator[dict[str, Any]]:
    """moto with every resource the handlers touch, named as tests/conftest.py's environment names them."""
    from tests.unit.extractor.support import create_test_aws

    with mock_aws():
        kit = create_test_aws()  # bucket, state + idempotency tables, ExtractDLQ, pipeline topic
        sns, sqs, glue = clients("sns", "sqs", "glue")
        sns.create_topic(Name=os.environ["ALERTS_TOPIC_ARN"].rsplit(":", 1)[1])
        glue.create_database(DatabaseInput={"Name": os.environ["GLUE_DATABASE"]})
        yield {"kit": kit, "s3": kit.s3, "sqs": sqs}


def all_keys(s3: Any) -> set[str]:
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=os.environ["LAKE_BUCKET"])
    return {f"{v['Key']}#{v['VersionId']}" for page in pages for v in page.get("Versions", [])}


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    from datalake.observability import logger

    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)
    try:
        yield stream
    finally:
        logger.registered_handler.setStream(previous)


@FEWER
@given(body=bodies)
def test_the_extractor_dead_letters_a_hostile_request_with_its_reason(hostile_aws, lambda_context, body):
    from tests.unit.extractor.support import bound_handler

    unreachable = dict.fromkeys(("BLS_API_URL", "BLS_BULK_URL", "DATAUSA_URL", "SOCRATA_URL"), "http://127.0.0.1:9/")
    record = sqs_record(body)
    try:
        ExtractRecord.model_validate(record)
        return  # a valid request: not hostile (it would go to its source)
    except ValidationError:
        pass
    before = all_keys(hostile_aws["s3"])

    with bound_handler(hostile_aws["kit"], None, unreachable) as handler:
        response = handler.lambda_handler({"Records": [record]}, lambda_context)

    assert response == {"batchItemFailures": []}  # done: retrying cannot help
    dead = hostile_aws["kit"].dlq_messages()
    assert [m["Body"] for m in dead] == [body]
    assert dead[0]["MessageAttributes"]["failure_reason"]["StringValue"].startswith("invalid ExtractRequest")
    assert all_keys(hostile_aws["s3"]) == before


@FEWER
@given(body=bodies)
def test_the_transformer_fails_a_hostile_notification_alone_and_writes_nothing(hostile_aws, lambda_context, body):
    from transformer import handler

    before = all_keys(hostile_aws["s3"])
    good = sqs_record(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "test-lake"}), "m-good")
    response = handler.lambda_handler({"Records": [good, sqs_record(body)]}, lambda_context)
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert "m-good" not in failed  # its neighbour is not failed with it
    if "m-hostile" not in failed:  # accepted: an s3:TestEvent, or a notification that names nothing
        parsed = S3NotificationRecord.model_validate(sqs_record(body)).body
        assert isinstance(parsed, S3TestEvent) or not parsed.Records
    assert all_keys(hostile_aws["s3"]) == before


@FEWER
@given(body=bodies)
def test_the_modeler_fails_a_hostile_event_alone_and_writes_nothing(hostile_aws, lambda_context, body):
    from modeler import handler

    before = all_keys(hostile_aws["s3"])
    try:
        response = handler.lambda_handler({"Records": [sqs_record(body)]}, lambda_context)
    except BatchProcessingError as exc:  # Powertools: a batch whose every record failed raises, naming them
        assert "All records failed processing" in str(exc)
    else:
        assert response["batchItemFailures"] == [{"itemIdentifier": "m-hostile"}]
    assert all_keys(hostile_aws["s3"]) == before


@FEWER
@given(body=bodies)
@example(body=sns_body("not json {"))
def test_the_notifier_fails_a_hostile_message_alone_or_passes_it_on(hostile_aws, lambda_context, logs, body):
    from notifier import handler

    handler.notifier.reset()
    before = all_keys(hostile_aws["s3"])
    try:
        response = handler.lambda_handler({"Records": [sqs_record(body)]}, lambda_context)
    except BatchProcessingError as exc:  # Powertools: a batch whose every record failed raises, naming them
        assert "All records failed processing" in str(exc)
    else:
        assert response["batchItemFailures"] in ([], [{"itemIdentifier": "m-hostile"}])
    assert all_keys(hostile_aws["s3"]) == before
