"""The scheduler, driven with the events/*.json files, against moto SQS and SNS."""

from __future__ import annotations

import json
import os

import pytest
from moto import mock_aws

from datalake.catalog import load_catalog
from datalake.contracts import ExtractRequest, Source, Trigger
from scheduler.service import BadScheduleRequest
from tests.aws_builders import clients, create_state_table, drain_queue
from tests.conftest import load_event


@pytest.fixture
def aws():
    with mock_aws():
        sqs, sns, ddb = clients("sqs", "sns", "dynamodb")
        create_state_table(ddb, os.environ["STATE_TABLE"])
        url = sqs.create_queue(QueueName="test-extract")["QueueUrl"]
        topic = sns.create_topic(Name="test-pipeline")["TopicArn"]
        events_queue = sqs.create_queue(QueueName="test-events")["QueueUrl"]
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint="arn:aws:sqs:us-east-1:123456789012:test-events",
            Attributes={"RawMessageDelivery": "true"},
        )
        assert url == os.environ["EXTRACT_QUEUE_URL"]  # the handler's settings name this very queue
        from scheduler import handler

        yield sqs, url, events_queue, handler


def drain(sqs, url) -> list[dict]:
    return drain_queue(sqs, url)


def test_scheduled_event_sends_one_valid_message_per_catalog_entry(aws, lambda_context):
    # GIVEN the daily scheduled event
    sqs, url, events_queue, handler = aws
    catalog = load_catalog()

    # WHEN the scheduler runs
    result = handler.lambda_handler(load_event("scheduler_scheduled.json"), lambda_context)

    # THEN every catalog entry gets exactly one valid ExtractRequest, all in one run
    messages = drain(sqs, url)
    requests = [ExtractRequest.model_validate_json(m["Body"]) for m in messages]
    assert len(requests) == len(catalog.entries) == result["sent"]
    assert sorted(f"{r.source.value}/{r.dataset}" for r in requests) == sorted(e.ref for e in catalog.entries)
    assert len([r for r in requests if r.source is Source.BLS_API]) >= 68
    assert {r.run_id for r in requests} == {result["run_id"]}
    assert result["run_id"].startswith("20261121T080000Z-")
    assert all(r.trigger is Trigger.SCHEDULE for r in requests)
    # the BLS API takes the recent three-year window; snapshot sources take no window
    api = [r for r in requests if r.source is Source.BLS_API]
    assert {(r.params.start_year, r.params.end_year) for r in api} == {(2024, 2026)}
    assert all(r.params.start_year is None for r in requests if r.source is not Source.BLS_API)
    assert {m["MessageAttributes"]["source"]["StringValue"] for m in messages} == {s.value for s in Source}

    # AND a run.started event announces the run with its datasets
    started = [json.loads(m["Body"]) for m in drain(sqs, events_queue)]
    assert [e["event_type"] for e in started] == ["run.started"]
    assert started[0]["counts"] == {"requests": len(catalog.entries)}


def test_same_scheduled_event_gives_same_run_id(aws, lambda_context):
    sqs, url, _, handler = aws
    first = handler.lambda_handler(load_event("scheduler_scheduled.json"), lambda_context)
    second = handler.lambda_handler(load_event("scheduler_scheduled.json"), lambda_context)
    assert first["run_id"] == second["run_id"]  # a retried invocation is deduplicated downstream


def test_manual_request_selects_datasets(aws, lambda_context):
    sqs, url, _, handler = aws
    result = handler.lambda_handler(load_event("scheduler_manual.json"), lambda_context)
    requests = [ExtractRequest.model_validate_json(m["Body"]) for m in drain(sqs, url)]
    assert sorted(r.dataset for r in requests) == ["CES0000000001", "LNS14000000", "PRS30006032"]
    assert result["trigger"] == "manual"


def test_backfill_request_carries_its_window(aws, lambda_context):
    sqs, url, _, handler = aws
    handler.lambda_handler(load_event("scheduler_backfill.json"), lambda_context)
    requests = [ExtractRequest.model_validate_json(m["Body"]) for m in drain(sqs, url)]
    assert len(requests) >= 68
    assert {(r.params.start_year, r.params.end_year, r.trigger) for r in requests} == {(2005, 2024, Trigger.BACKFILL)}


def test_bad_request_names_every_problem_and_sends_nothing(aws, lambda_context):
    sqs, url, events_queue, handler = aws
    with pytest.raises(BadScheduleRequest) as raised:
        handler.lambda_handler(load_event("scheduler_bad_request.json"), lambda_context)
    message = str(raised.value)
    assert "nothing sent" in message
    assert "sources.1" in message and "end_year" in message
    assert drain(sqs, url) == []
    assert drain(sqs, events_queue) == []


def test_unknown_dataset_is_refused_before_sending(aws, lambda_context):
    sqs, url, _, handler = aws
    with pytest.raises(BadScheduleRequest, match="NOPE0000"):
        handler.lambda_handler({"trigger": "manual", "datasets": ["LNS14000000", "NOPE0000"]}, lambda_context)
    assert drain(sqs, url) == []


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"trigger": "manual", "datasets": []}, "datasets is an empty list: omit it to select the whole catalog"),
        ({"trigger": "manual", "sources": []}, "sources is an empty list: omit it to select the whole catalog"),
        (["LNS14000000"], "must be a JSON object, got a list"),
        ("LNS14000000", "must be a JSON object, got a string"),
        (None, "must be a JSON object, got null"),
        ({"trigger": "backfill", "start_year": 2090, "end_year": 2100}, "start_year 2090 is in the future"),
        ({"trigger": "backfill", "start_year": 2020, "end_year": 2100}, "end_year 2100 is in the future"),
    ],
    ids=["empty-datasets", "empty-sources", "list", "string", "null", "future-window", "future-end"],
)
def test_malformed_requests_get_one_clear_error_and_send_nothing(aws, lambda_context, payload, problem):
    sqs, url, events_queue, handler = aws
    with pytest.raises(BadScheduleRequest) as raised:
        handler.lambda_handler(payload, lambda_context)
    assert problem in str(raised.value)
    assert "nothing sent" in str(raised.value)
    assert drain(sqs, url) == [] and drain(sqs, events_queue) == []


def test_thousands_of_unknown_ids_give_a_short_error(aws, lambda_context):
    sqs, url, _, handler = aws
    unknown = [f"NOPE{i:06d}" for i in range(10_000)]
    with pytest.raises(BadScheduleRequest) as raised:
        handler.lambda_handler({"trigger": "manual", "datasets": unknown}, lambda_context)
    message = str(raised.value)
    assert len(message) < 400, len(message)
    assert "10000 not in the catalog" in message and "NOPE000000" in message and "and 9990 more" in message
    assert drain(sqs, url) == []


def test_a_reused_run_id_is_refused_and_a_retried_scheduled_event_is_not(aws, lambda_context):
    sqs, url, events_queue, handler = aws
    request = {"trigger": "manual", "datasets": ["LNS14000000"], "run_id": "20261203T080000Z-0123abcd"}
    first = handler.lambda_handler(request, lambda_context)
    assert first["run_id"] == request["run_id"] and len(drain(sqs, url)) == 1

    # a second invoke with the same run id would be answered by the extractor's idempotency records for a week
    with pytest.raises(BadScheduleRequest, match="run_id 20261203T080000Z-0123abcd was already used"):
        handler.lambda_handler(request, lambda_context)
    assert drain(sqs, url) == []

    # while the same scheduled event, retried by EventBridge, still goes through (de-duplicated downstream)
    scheduled = load_event("scheduler_scheduled.json")
    assert (
        handler.lambda_handler(scheduled, lambda_context)["run_id"]
        == handler.lambda_handler(scheduled, lambda_context)["run_id"]
    )


def test_accept_drop_reaches_every_request(aws, lambda_context):
    sqs, url, _, handler = aws
    handler.lambda_handler({"trigger": "manual", "sources": ["socrata"], "accept_drop": True}, lambda_context)
    requests = [ExtractRequest.model_validate_json(m["Body"]) for m in drain(sqs, url)]
    assert requests and all(r.params.accept_drop for r in requests)
