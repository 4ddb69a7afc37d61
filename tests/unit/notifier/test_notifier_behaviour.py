"""Repeats, retries, partial batch failures, the webhook secret, correlation ids, freshness and closing runs."""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from notifier.delivery import AlertsTopic, DeliveryError, Webhook
from notifier.domain.notice import Kind, Notice
from notifier.invocations import BadNotifierRequest
from tests.conftest import FakeLambdaContext, load_event

RUN = "20261121T080000Z-3f9a1c2e"
WEBHOOK_URL = "https://hooks.example.org/services/T0000/B0000/s3cr3tTokenValue42"


def redelivered(name: str, *, new_sns_id: bool = True) -> dict:
    """The sample again, as a second delivery: new SQS ids, and (unless told) a new SNS MessageId, which is what the
    same event published twice looks like."""
    event = load_event(name)
    for record in event["Records"]:
        record["messageId"] = str(uuid.uuid4())
        if new_sns_id:
            body = json.loads(record["body"])
            body["MessageId"] = str(uuid.uuid4())
            record["body"] = json.dumps(body)
    return event


def sns_record(event_json: dict, *, event_type: str | None = None) -> dict:
    """A NotifyQueue record carrying one pipeline event (or, without an event type, an AlarmTopic message)."""
    template = load_event("notifier_stage_failed.json")["Records"][0]
    body = json.loads(template["body"])
    body["MessageId"] = str(uuid.uuid4())
    body["Message"] = json.dumps(event_json) if isinstance(event_json, dict) else event_json
    if event_type is None:
        body.pop("MessageAttributes")
    else:
        body["MessageAttributes"]["event_type"]["Value"] = event_type
    return {**template, "messageId": str(uuid.uuid4()), "body": json.dumps(body)}


def at(moment: str):
    fixed = datetime.fromisoformat(moment).astimezone(UTC)
    return lambda: fixed


def test_one_bad_record_fails_alone(notifier_aws, lambda_context):
    # GIVEN a batch with a good failure event and a record whose event breaks the contract
    event = load_event("notifier_stage_failed.json")
    bad = sns_record({"run_id": "not-a-run", "event_type": "stage.failed"}, event_type="stage.failed")
    event["Records"].append(bad)

    # WHEN the notifier handles it
    response = notifier_aws.handler.lambda_handler(event, lambda_context)

    # THEN only the bad record returns to the queue, and the good one was told
    assert response == {"batchItemFailures": [{"itemIdentifier": bad["messageId"]}]}
    assert [m["subject"] for m in notifier_aws.inbox()] == ["[opendata-dev] FAILED extractor: bls_api/CES0000000099"]


def test_repeats_of_a_failure_within_the_window_are_counted_not_sent(notifier_aws, lambda_context):
    handler = notifier_aws.handler
    service = handler.notifier()
    service.clock = at("2026-11-21T08:01:00+00:00")
    handler.lambda_handler(load_event("notifier_stage_failed.json"), lambda_context)
    # the same failure, published again (a new SNS message), twice, within the hour
    handler.lambda_handler(redelivered("notifier_stage_failed.json"), lambda_context)
    handler.lambda_handler(redelivered("notifier_stage_failed.json"), lambda_context)
    assert len(notifier_aws.inbox()) == 1
    [alert] = notifier_aws.items("ALERT#")
    assert alert["repeats"] == 2

    # AFTER the window, the failure is told again, with the count of what was held back
    service.clock = at("2026-11-21T09:02:00+00:00")
    handler.lambda_handler(redelivered("notifier_stage_failed.json"), lambda_context)
    [again] = notifier_aws.inbox()
    assert again["subject"] == "[opendata-dev] FAILED extractor: bls_api/CES0000000099"
    assert again["body"].endswith("(2 repeat(s) of this notice were not sent in the previous 60 min.)\n")


def test_the_same_failure_with_different_numbers_in_its_reason_is_a_repeat(notifier_aws, lambda_context):
    first = load_event("notifier_stage_failed.json")
    second = redelivered("notifier_stage_failed.json")
    body = json.loads(second["Records"][0]["body"])
    message = json.loads(body["Message"])
    message["reason"] = message["reason"] + " (after 3 attempts, 12.5 s)"
    body["Message"] = json.dumps(message)
    second["Records"][0]["body"] = json.dumps(body)
    first_body = json.loads(first["Records"][0]["body"])
    first_message = json.loads(first_body["Message"])
    first_message["reason"] += " (after 5 attempts, 30.1 s)"
    first_body["Message"] = json.dumps(first_message)
    first["Records"][0]["body"] = json.dumps(first_body)

    notifier_aws.handler.lambda_handler(first, lambda_context)
    notifier_aws.handler.lambda_handler(second, lambda_context)
    assert len(notifier_aws.inbox()) == 1


def test_a_failed_channel_is_retried_alone(notifier_aws, lambda_context):
    # GIVEN a webhook configured in SSM that fails once
    notifier_aws.ssm.put_parameter(
        Name="/test/notifier/webhook-url", Value=WEBHOOK_URL, Type="SecureString", Overwrite=True
    )
    posts: list[tuple[str, dict]] = []

    def flaky_post(url: str, payload: bytes) -> None:
        posts.append((url, json.loads(payload)))
        if len(posts) == 1:
            raise DeliveryError("the webhook answered HTTP 503")

    notifier_aws.compose(webhook=Webhook("/test/notifier/webhook-url", post=flaky_post))
    event = load_event("notifier_stage_failed.json")

    # WHEN the record fails on the webhook (the whole one-record batch fails), then Lambda delivers it again
    with pytest.raises(BatchProcessingError):
        notifier_aws.handler.lambda_handler(event, lambda_context)
    second = notifier_aws.handler.lambda_handler(event, lambda_context)

    # THEN the email went out once, and the webhook got the notice on the retry
    assert second == {"batchItemFailures": []}
    assert len(notifier_aws.inbox()) == 1
    assert len(posts) == 2
    assert posts[1][0] == WEBHOOK_URL
    assert posts[1][1]["text"].startswith("*[opendata-dev] FAILED extractor: bls_api/CES0000000099*\n")
    # AND a third delivery of the same message sends nothing at all
    notifier_aws.handler.lambda_handler(event, lambda_context)
    assert notifier_aws.inbox() == [] and len(posts) == 2


@pytest.mark.sockets  # a connection refused on 127.0.0.1
def test_the_webhook_url_never_reaches_a_log_line_or_an_error(notifier_aws, lambda_context, captured_logs):
    # GIVEN a webhook URL in SSM that cannot be reached (a closed port on this machine)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T0000/B0000/s3cr3tTokenValue42"
    notifier_aws.ssm.put_parameter(Name="/test/notifier/webhook-url", Value=url, Type="SecureString", Overwrite=True)

    # WHEN the notifier fails to post, and something logs the URL
    with pytest.raises(BatchProcessingError) as failure:
        notifier_aws.handler.lambda_handler(load_event("notifier_stage_failed.json"), lambda_context)
    notifier_aws.handler.logger.warning("posting to the webhook", extra={"target": url, "note": f"POST {url}"})

    # THEN the error says what happened without the URL, and every log line has it redacted
    assert "the webhook could not be reached: ConnectionRefusedError" in str(failure.value)
    assert "s3cr3tTokenValue42" not in str(failure.value)
    assert captured_logs.lines
    assert "s3cr3tTokenValue42" not in captured_logs.text
    assert "***redacted***" in captured_logs.text
    # AND the email still went out
    assert len(notifier_aws.inbox()) == 1


def test_no_webhook_parameter_means_email_only(notifier_aws, lambda_context):
    service = notifier_aws.handler.notifier()
    assert service.ports.webhook.url() is None
    notifier_aws.handler.lambda_handler(load_event("notifier_stage_failed.json"), lambda_context)
    [message] = notifier_aws.items("ALERT#")
    assert message["channels"] == ["email"]


def test_every_log_line_of_a_run_carries_its_run_id(notifier_aws, lambda_context, captured_logs):
    notifier_aws.handler.lambda_handler(load_event("notifier_run_completion.json"), lambda_context)
    notifier_aws.handler.lambda_handler(load_event("notifier_alarm.json"), lambda_context)

    run_lines = [line for line in captured_logs.lines if line.get("event_type")]
    assert len(run_lines) >= 9
    assert {line["correlation_id"] for line in run_lines} == {RUN}
    alarm_lines = [line for line in captured_logs.lines if line["message"].startswith("alarm notice")]
    assert alarm_lines and all(line.get("correlation_id") is None and "run_id" not in line for line in alarm_lines)


def test_a_summary_reports_run_metrics(notifier_aws, lambda_context, capsys):
    notifier_aws.handler.lambda_handler(load_event("notifier_run_completion.json"), lambda_context)
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    datasets = {b["Outcome"]: b["RunDatasets"] for b in blobs if "RunDatasets" in b}
    assert datasets == {
        "extracted": [3],
        "unchanged": [1],
        "staged": [2],
        "quarantined": [1],
        "held": [0],
        "failed": [0],
    }
    stages = {b["Stage"]: b["RunStageSeconds"] for b in blobs if "RunStageSeconds" in b}
    assert stages["model"] == [pytest.approx(68.676)]
    assert [b["RunRowsStaged"] for b in blobs if "RunRowsStaged" in b] == [[38412 + 282 + 13]]
    for blob in blobs:
        dims = blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
        assert set(dims) <= {"service", "Kind", "Outcome", "Stage", "Source", "function_name"}


def scheduled(moment: str) -> dict:
    event = load_event("scheduler_scheduled.json")
    return {**event, "time": moment, "id": str(uuid.uuid4())}


def test_housekeeping_reports_freshness_per_source(notifier_aws, lambda_context, capsys):
    # GIVEN a run that staged bls_bulk and datausa, found bls_api unchanged, and quarantined socrata
    notifier_aws.handler.lambda_handler(load_event("notifier_run_completion.json"), lambda_context)
    capsys.readouterr()
    # WHEN the housekeeping schedule fires a day later
    notifier_aws.handler.notifier().clock = at("2026-11-22T08:00:31.846+00:00")
    notifier_aws.handler.lambda_handler(scheduled("2026-11-22T08:00:00Z"), lambda_context)

    # THEN freshness is the hours since each source was last confirmed current; socrata has none (no datapoint)
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    fresh = {b["Source"]: b["FreshnessHours"] for b in blobs if "FreshnessHours" in b}
    assert fresh == {"bls_bulk": [24.0], "datausa": [24.005], "bls_api": [24.008]}
    [blob] = [b for b in blobs if b.get("Source") == "bls_bulk"]
    assert blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "Source"]]
    assert blob["service"] == "test"  # POWERTOOLS_SERVICE_NAME; "notifier" in the template


def test_freshness_reads_the_transformers_mark_too(notifier_aws):
    from datalake.state import StateStore

    StateStore("test-state", notifier_aws.ddb).put(
        "SOURCE#socrata", "FRESHNESS", {"last_staged_at": "2026-11-22T02:00:00.000000Z"}
    )
    service = notifier_aws.handler.notifier()
    service.clock = at("2026-11-22T08:00:00+00:00")
    assert service.freshness()["socrata"] == 6.0


@dataclass
class SwitchableTopic:
    """The alerts topic, or SNS down: a fake of the notifier's ``topic`` port."""

    real: AlertsTopic
    down: bool = False

    def send(self, notice) -> str:
        if self.down:
            raise DeliveryError("could not publish: SNS is down")
        return self.real.send(notice)


def started(datasets: list[str], run: str = "20261122T080000Z-aa11bb22") -> dict:
    return {
        "run_id": run,
        "occurred_at": "2026-11-22T08:00:00Z",
        "event_type": "run.started",
        "trigger": "schedule",
        "datasets": datasets,
    }


def unchanged(ref: str, moment: str, run: str = "20261122T080000Z-aa11bb22") -> dict:
    source, dataset = ref.split("/")
    return {
        "run_id": run,
        "occurred_at": moment,
        "source": source,
        "dataset": dataset,
        "event_type": "dataset.unchanged",
        "content_sha256": "a" * 64,
    }


def batch(*events: dict) -> dict:
    return {"Records": [sns_record(e, event_type=e["event_type"]) for e in events]}


def test_a_run_that_never_settles_is_closed_by_housekeeping_and_updated_by_late_outcomes(notifier_aws, lambda_context):
    handler = notifier_aws.handler
    service = handler.notifier()
    service.clock = at("2026-11-22T08:00:05+00:00")
    # GIVEN a run of two datasets, one of which is never heard of (its request went to ExtractDLQ)
    handler.lambda_handler(
        batch(
            started(["bls_api/LNS14000000", "bls_api/CES0000000001"]),
            unchanged("bls_api/LNS14000000", "2026-11-22T08:00:03Z"),
        ),
        lambda_context,
    )
    assert notifier_aws.inbox() == []

    # WHEN housekeeping runs before the settle time, nothing happens; after it, the run is closed
    service.clock = at("2026-11-23T10:00:00+00:00")
    handler.lambda_handler(scheduled("2026-11-23T10:00:00Z"), lambda_context)
    assert notifier_aws.inbox() == []
    service.clock = at("2026-11-23T14:30:00+00:00")
    handler.lambda_handler(scheduled("2026-11-23T14:30:00Z"), lambda_context)
    [closed] = notifier_aws.inbox()
    assert closed["subject"] == "[opendata-dev] Run 20261122T080000Z-aa11bb22: 0 staged, 1 unchanged, 1 no outcome"
    assert "  no outcome         1\n" in closed["body"]
    assert "closed before it settled" in closed["body"]
    assert "  no outcome bls_api/CES0000000001: nothing was heard of it before the run was closed" in closed["body"]
    # housekeeping again: the run is no longer open, and nothing is sent twice
    handler.lambda_handler(scheduled("2026-11-23T14:45:00Z"), lambda_context)
    assert notifier_aws.inbox() == []

    # WHEN the dataset's request is redriven and its outcome arrives late, THEN an updated summary goes out
    handler.lambda_handler(batch(unchanged("bls_api/CES0000000001", "2026-11-23T15:00:00Z")), lambda_context)
    [updated] = notifier_aws.inbox()
    assert updated["body"].startswith("RUN 20261122T080000Z-aa11bb22 (schedule): updated summary (late outcomes)\n")
    assert "  unchanged          2\n" in updated["body"] and "no outcome" not in updated["body"]


def test_a_manual_settle_closes_one_run_now(notifier_aws, lambda_context):
    handler = notifier_aws.handler
    handler.lambda_handler(batch(started(["datausa/population"])), lambda_context)
    result = handler.lambda_handler({"action": "settle", "run_id": "20261122T080000Z-aa11bb22"}, lambda_context)
    assert result["summaries"] == ["[opendata-dev] Run 20261122T080000Z-aa11bb22: 0 staged, 0 unchanged, 1 no outcome"]
    assert len(notifier_aws.inbox()) == 1


def test_a_direct_invoke_that_is_not_a_request_is_refused(notifier_aws, lambda_context):
    with pytest.raises(BadNotifierRequest):
        notifier_aws.handler.lambda_handler({"action": "explode"}, lambda_context)


def test_staged_data_waits_for_the_marts_before_the_run_settles(notifier_aws, lambda_context):
    handler = notifier_aws.handler
    staged = {
        "run_id": "20261122T080000Z-aa11bb22",
        "occurred_at": "2026-11-22T08:00:20Z",
        "source": "datausa",
        "dataset": "population",
        "event_type": "dataset.staged",
        "manifest_key": "landing/datausa/population/ingest_date=2026-11-22/x.manifest.json",
        "tables": [{"table": "population", "rows_in": 13, "rows_written": 13}],
    }
    handler.lambda_handler(batch(started(["datausa/population"]), staged), lambda_context)
    assert notifier_aws.inbox() == []  # staged, but the marts are not rebuilt yet
    built = {
        "run_id": "20261122T080000Z-aa11bb22",
        "occurred_at": "2026-11-22T08:01:30Z",
        "event_type": "marts.built",
        "marts": [{"name": "population_stats", "rows": 1, "key": "marts/reports/population_stats/part-1.parquet"}],
    }
    handler.lambda_handler(batch(built), lambda_context)
    [summary] = notifier_aws.inbox()
    assert "  staged             1\n" in summary["body"]
    assert "  model         1m10s   (last staging -> marts built)\n" in summary["body"]


def test_a_budget_notification_on_the_alarm_topic_is_passed_on(notifier_aws, lambda_context):
    text = (
        "AWS Budget Notification November 21, 2026\nAWS Account 123456789012\n\nDear AWS Customer,\n\n"
        "You requested that we alert you when the ACTUAL Cost associated with your opendata-dev-monthly-cost "
        "budget is greater than $40.00 for the current month."
    )
    record = sns_record(text)
    body = json.loads(record["body"])
    body["Subject"] = "AWS Budgets: opendata-dev-monthly-cost has exceeded your alert threshold"
    record["body"] = json.dumps(body)
    notifier_aws.handler.lambda_handler({"Records": [record]}, lambda_context)
    [message] = notifier_aws.inbox()
    assert message["subject"] == (
        "[opendata-dev] AWS Budgets: opendata-dev-monthly-cost has exceeded your alert threshold"
    )
    assert "budget is greater than $40.00 for the current month." in message["body"]


def test_a_summary_whose_delivery_died_is_taken_over_after_the_lease(notifier_aws, lambda_context):
    handler = notifier_aws.handler
    topic = SwitchableTopic(AlertsTopic(notifier_aws.settings.alerts_topic_arn))
    service = notifier_aws.compose(topic=topic)
    service.clock = at("2026-11-22T09:00:00+00:00")
    handler.lambda_handler(batch(started(["datausa/population"])), lambda_context)

    # GIVEN a manual settle that claimed the summary, then died on SNS (each manual invoke is a new delivery)
    topic.down = True
    request = {"action": "settle", "run_id": "20261122T080000Z-aa11bb22"}
    with pytest.raises(DeliveryError):
        handler.lambda_handler(request, FakeLambdaContext())
    topic.down = False

    # WHEN settled again within the lease, the claim still belongs to the dead delivery: nothing is sent
    service.clock = at("2026-11-22T09:05:00+00:00")
    assert handler.lambda_handler(request, FakeLambdaContext())["summaries"] == []
    # AFTER the lease, the new delivery takes the claim over and the summary goes out, once
    service.clock = at("2026-11-22T09:20:00+00:00")
    sent = handler.lambda_handler(request, FakeLambdaContext())["summaries"]
    assert sent == ["[opendata-dev] Run 20261122T080000Z-aa11bb22: 0 staged, 0 unchanged, 1 no outcome"]
    service.clock = at("2026-11-22T09:40:00+00:00")
    assert handler.lambda_handler(request, FakeLambdaContext())["summaries"] == []
    assert len(notifier_aws.inbox()) == 1


def test_a_notice_too_long_for_sns_is_sent_cut_rather_than_refused(notifier_aws):
    body = "".join(f"  failed socrata/{i:05d} in the extractor: SourceDown: HTTP 503\n" for i in range(6000))
    assert len(body) > 262_144  # what SNS (and moto) refuse

    AlertsTopic(os.environ["ALERTS_TOPIC_ARN"]).send(Notice(Kind.SUMMARY, "long", body, "x"))

    [sent] = notifier_aws.inbox()
    assert sent["body"].startswith("  failed socrata/00000 in the extractor")
    assert sent["body"].endswith("\n[... the rest of this message is cut: SNS delivers at most 256 KB]\n")
    assert body.startswith(sent["body"].split("\n[...")[0])
