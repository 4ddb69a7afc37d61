"""The notifier, driven with the events/notifier_*.json files as Lambda delivers them, tells people the right thing."""

from __future__ import annotations

import json

from tests.conftest import load_event

RUN = "20261121T080000Z-3f9a1c2e"
QUEUE_LINK = (
    "https://us-east-1.console.aws.amazon.com/sqs/v3/home?region=us-east-1#/queues/"
    "https%3A%2F%2Fsqs.us-east-1.amazonaws.com%2F123456789012%2Fopendata-dev-extract-dlq"
)


def invoke(notifier_aws, name, lambda_context):
    response = notifier_aws.handler.lambda_handler(load_event(name), lambda_context)
    assert response == {"batchItemFailures": []}
    return notifier_aws.inbox()


def test_a_failure_says_what_failed_which_dataset_why_what_to_do_and_where(notifier_aws, lambda_context):
    [message] = invoke(notifier_aws, "notifier_stage_failed.json", lambda_context)

    assert message["subject"] == "[opendata-dev] FAILED extractor: bls_api/CES0000000099"
    body = message["body"]
    assert body.startswith(f"FAILED in the extractor: bls_api/CES0000000099\nRun {RUN}, 2026-11-21 08:00:05 UTC\n")
    assert "What failed: The extractor failed on bls_api/CES0000000099.\n" in body
    assert "Why: SeriesNotFound: BLS API: Series does not exist for Series CES0000000099\n" in body
    assert "What to do: The ExtractRequest is in ExtractDLQ with its failure_reason." in body
    assert "`make redrive QUEUE=ExtractDLQ STACK=...`" in body
    assert f"- extract-dlq: {QUEUE_LINK}\n" in body
    assert (
        "- extractor logs: https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#logsV2:log-groups/log-group/$252Faws$252Flambda$252Fopendata-dev-extractor\n"
    ) in body
    assert f'filter correlation_id = "{RUN}"' in body


def test_a_quarantine_names_the_reason_and_where_the_payload_is(notifier_aws, lambda_context):
    [message] = invoke(notifier_aws, "notifier_quarantined.json", lambda_context)

    assert message["subject"] == "[opendata-dev] QUARANTINED socrata/9uvn-hv6j"
    body = message["body"]
    assert (
        "What failed: the transformer rejected the whole landing of socrata/9uvn-hv6j; nothing from it was staged.\n"
    ) in body
    assert "Why: payload is not JSON: an HTML page was served with status 200 (starts with '<!DOCTYPE html>')\n" in body
    assert (
        "Quarantine: s3://opendata-dev-lake-123456789012/quarantine/socrata/9uvn-hv6j/"
        "20261121T080000Z-e3b0c44298fc/reason.json\n"
    ) in body
    lake = "opendata-dev-lake-123456789012"
    assert f"Landing manifest: s3://{lake}/landing/socrata/9uvn-hv6j/ingest_date=2026-11-21/" in body
    assert f"- quarantine: https://s3.console.aws.amazon.com/s3/object/{lake}?region=us-east-1" in body


def test_marts_built_outside_a_known_run_are_told_on_their_own(notifier_aws, lambda_context):
    [message] = invoke(notifier_aws, "notifier_marts_built.json", lambda_context)

    assert message["subject"] == "[opendata-dev] MARTS BUILT: population_stats, bls_best_year, series_population"
    body = message["body"]
    assert body.startswith("MARTS BUILT: 3 mart(s)\nRun 20261120T080000Z-c41d7a05, 2026-11-21 10:42:07 UTC\n")
    assert (
        "  bls_best_year                             282 rows  "
        "s3://opendata-dev-lake-123456789012/marts/reports/bls_best_year/part-3a7c9e1f5b2d8064.parquet\n"
    ) in body


def test_a_whole_run_in_one_batch_sends_its_quarantine_and_exactly_one_summary(notifier_aws, lambda_context):
    messages = invoke(notifier_aws, "notifier_run_completion.json", lambda_context)

    assert [m["subject"] for m in messages] == [
        "[opendata-dev] QUARANTINED socrata/9uvn-hv6j",
        f"[opendata-dev] Run {RUN}: 2 staged, 1 unchanged, 1 quarantined",
    ]
    body = messages[1]["body"]
    assert body.startswith(f"RUN {RUN} (schedule)\nStarted 2026-11-21 08:00:01 UTC, settled after 1m39s\n")
    assert (
        "Datasets (4 expected)\n"
        "  extracted          3\n"
        "  unchanged          1\n"
        "  staged             2\n"
        "  quarantined        1\n"
        "  held               0\n"
        "  failed             0\n"
    ) in body
    assert (
        "Rows by table\n"
        "  staging/bls_observation                        38,412 written\n"
        "  staging/bls_series                                282 written\n"
        "  staging/population                                 13 written\n"
        "  marts/bls_best_year                               282 rows\n"
        "  marts/population_stats                              1 row\n"
        "  marts/series_population                            29 rows\n"
    ) in body
    assert (
        "Stage times\n"
        "  extract       10.9s   (run start -> last extraction)\n"
        "  transform     25.0s   (first landing -> last staging)\n"
        "  model         1m09s   (last staging -> marts built)\n"
        "  total         1m39s   (run start -> last event)\n"
    ) in body
    assert "Needs attention\n  quarantined socrata/9uvn-hv6j: payload is not JSON" in body


def test_the_same_batch_delivered_again_sends_nothing_new(notifier_aws, lambda_context):
    invoke(notifier_aws, "notifier_run_completion.json", lambda_context)
    assert invoke(notifier_aws, "notifier_run_completion.json", lambda_context) == []


def test_the_batch_in_reverse_order_settles_to_the_same_summary(notifier_aws, lambda_context):
    event = load_event("notifier_run_completion.json")
    event["Records"].reverse()
    notifier_aws.handler.lambda_handler(event, lambda_context)
    summaries = [m for m in notifier_aws.inbox() if m["subject"].startswith("[opendata-dev] Run ")]
    assert len(summaries) == 1
    assert "  staged             2\n" in summaries[0]["body"]
    assert "  model         1m09s" in summaries[0]["body"]


def test_a_cloudwatch_alarm_says_which_queue_and_how_to_redrive_it(notifier_aws, lambda_context):
    [message] = invoke(notifier_aws, "notifier_alarm.json", lambda_context)

    assert message["subject"] == "[opendata-dev] ALARM: extract-dlq-not-empty"
    body = message["body"]
    assert body.startswith("ALARM: opendata-dev-extract-dlq-not-empty\nOK -> ALARM at 2026-11-21T08:10:33.152+0000\n")
    assert "What: ExtractDLQ holds messages: work that failed every attempt and was set aside.\n" in body
    assert "Why: Threshold Crossed: 1 out of the last 1 datapoints [1.0 (21/11/26 08:05:00)]" in body
    assert "then move them back with `make redrive QUEUE=ExtractDLQ STACK=opendata`" in body
    assert (
        "- alarm: https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#alarmsV2:alarm/opendata-dev-extract-dlq-not-empty\n"
    ) in body
    assert f"- ExtractDLQ: {QUEUE_LINK}\n" in body


def test_the_alarm_back_to_ok_is_told_too(notifier_aws, lambda_context):
    event = load_event("notifier_alarm.json")
    body = json.loads(event["Records"][0]["body"])
    alarm = json.loads(body["Message"])
    alarm.update(NewStateValue="OK", OldStateValue="ALARM", StateChangeTime="2026-11-21T09:40:03.004+0000")
    body.update(Message=json.dumps(alarm), MessageId="0f5c6a34-8f7e-4b8e-9d3e-2b1c5a6f7e80")
    event["Records"][0]["body"] = json.dumps(body)
    notifier_aws.handler.lambda_handler(event, lambda_context)

    [message] = notifier_aws.inbox()
    assert message["subject"] == "[opendata-dev] OK: extract-dlq-not-empty"
    assert "Resolved: ExtractDLQ holds messages" in message["body"]
