"""The BLS API key: read from SSM, used, counted against the keyed limits, and never written anywhere."""

from __future__ import annotations

import io
import json

import pytest

from localrun.replay import ReplayResponse
from tests.unit.extractor.support import API_KEY, DeferralSpy, failed_ids, request, sqs_event

SERIES = ["LNS14000000", "CES0000000001", "PRS30006032", "SMS38000001000000001"]


@pytest.fixture
def captured_logs(capsys):
    """Everything the Powertools logger writes (DEBUG included), then everything printed (EMF metrics)."""
    from datalake.observability import logger

    stream = io.StringIO()
    handler = logger.registered_handler
    previous_stream, previous_level = handler.setStream(stream), logger.log_level
    logger.setLevel("DEBUG")

    def read() -> str:
        return stream.getvalue() + capsys.readouterr().out

    try:
        yield read
    finally:
        handler.setStream(previous_stream)
        logger.setLevel(previous_level)


def everything_written(aws) -> list[str]:
    """Every landed object's body and metadata, and every pipeline event."""
    texts = []
    for version in aws.versions("landing/"):
        if "VersionId" in version and version.get("IsLatest") is not None and "Size" in version:
            obj = aws.s3.get_object(Bucket=aws.bucket, Key=version["Key"], VersionId=version["VersionId"])
            texts.append(obj["Body"].read().decode("utf-8", errors="replace"))
            texts.append(json.dumps(obj["Metadata"]))
    texts.extend(json.dumps(e) for e in aws.events())
    texts.extend(json.dumps(m) for m in aws.dlq_messages())
    return texts


def test_the_key_is_used_but_never_logged_landed_or_put_in_metadata(
    extractor, aws, replay, lambda_context, captured_logs
):
    # GIVEN a key in SSM
    aws.put_api_key()

    # WHEN a batch of series is extracted
    event = sqs_event([request("bls_api", s, start_year=2024, end_year=2026) for s in SERIES])
    assert extractor.lambda_handler(event, lambda_context) == {"batchItemFailures": []}

    # THEN the key went to BLS (the keyed v2 query) ...
    [query] = [r for r in replay.log if r.endpoint == "bls_api"]
    assert query.json()["registrationkey"] == API_KEY
    # ... and appears nowhere we write: the response object, manifests, metadata, events, logs, metrics
    written = everything_written(aws)
    assert len(aws.keys("landing/bls_api/_responses/")) == 1
    assert len(written) == 2 * (len(SERIES) + 1) + len(SERIES)  # (body, metadata) of 5 objects, 4 events
    assert not [text for text in written if API_KEY in text]
    logs = captured_logs()
    assert "BLS API batch fetched" in logs  # the capture did see the run's logs
    assert API_KEY not in logs


def test_a_response_that_echoes_the_key_is_not_stored_and_its_series_are_dead_lettered(
    extractor, aws, replay, lambda_context, captured_logs
):
    # GIVEN a key in SSM, and a successful BLS answer that echoes the key in a message (in upper case, even)
    aws.put_api_key()

    def echo_key(req, proceed):
        answer = proceed()
        if req.endpoint == "bls_api":
            document = json.loads(answer.body)
            document["message"].append(f"The key:{req.json()['registrationkey'].upper()} was used for this request.")
            answer.body = json.dumps(document).encode()
        return answer

    replay.add_hook(echo_key)

    # WHEN a batch of series is extracted
    event = sqs_event([request("bls_api", s, start_year=2024, end_year=2026) for s in SERIES])
    response = extractor.lambda_handler(event, lambda_context)

    # THEN the body is neither stored as received (it holds the key) nor rewritten: nothing is landed at all ...
    assert aws.keys("landing/") == []
    # ... and every series of the query fails visibly: dead-lettered with the reason, done (retrying cannot help)
    assert response == {"batchItemFailures": []}
    dead = aws.dlq_messages()
    assert sorted(json.loads(m["Body"])["dataset"] for m in dead) == sorted(SERIES)
    reasons = {m["MessageAttributes"]["error_type"]["StringValue"] for m in dead}
    assert reasons == {"secret_in_response"}
    assert "echoes the registration key" in dead[0]["MessageAttributes"]["failure_reason"]["StringValue"]
    events = aws.events()
    assert sorted(e["dataset"] for e in events if e["event_type"] == "stage.failed") == sorted(SERIES)
    # AND the key is nowhere: DLQ messages, events, logs
    assert not [text for text in [json.dumps(m) for m in dead] + [json.dumps(e) for e in events] if API_KEY in text]
    logs = captured_logs()
    assert "echoes the registration key" in logs
    assert API_KEY not in logs and API_KEY.upper() not in logs


def test_the_key_stays_secret_when_bls_rejects_it(bind, aws, replay, lambda_context, captured_logs):
    aws.put_api_key()
    extractor = bind(replay, queues=DeferralSpy(aws, forward=False))
    replay.add_hook(
        lambda req, proceed: ReplayResponse.json_body(
            {
                "status": "REQUEST_NOT_PROCESSED",
                "responseTime": 1,
                "message": [f"The key:{req.json()['registrationkey']} provided by the User is invalid."],
                "Results": {},
            }
        )
    )
    response = extractor.lambda_handler(sqs_event([request("bls_api", "LNS14000000")]), lambda_context)
    assert failed_ids(response) == {"m-0"}
    logs = captured_logs()
    assert "provided by the User is invalid" in logs  # the reason is logged ...
    assert API_KEY not in logs  # ... without the key
    assert not [text for text in everything_written(aws) if API_KEY in text]


def test_without_a_key_parameter_the_keyless_limits_apply(extractor, aws, replay, lambda_context):
    series = [f"CES{i:010d}" for i in range(30)]
    event = sqs_event([request("bls_api", s, start_year=2024, end_year=2026) for s in series])
    assert extractor.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    queries = [r.json() for r in replay.log if r.endpoint == "bls_api"]
    assert [len(q["seriesid"]) for q in queries] == [25, 5]
    assert all("registrationkey" not in q for q in queries)


def test_metrics_count_calls_records_and_unchanged_by_source(extractor, aws, replay, lambda_context, captured_logs):
    event = sqs_event([request("bls_api", s, start_year=2024, end_year=2026) for s in SERIES])
    extractor.lambda_handler(event, lambda_context)
    rerun = sqs_event(
        [request("bls_api", s, start_year=2024, end_year=2026, run_id="20261122T080000Z-0a1b2c3d") for s in SERIES]
    )
    extractor.lambda_handler(rerun, lambda_context)

    emitted: dict[tuple[str, str], float] = {}
    for line in captured_logs().splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                key = (metric["Name"], document.get("source", ""))
                value = document[metric["Name"]]
                emitted[key] = emitted.get(key, 0) + (sum(value) if isinstance(value, list) else value)
    assert emitted[("ApiCalls", "bls_api")] == 2  # one coalesced query per run
    assert emitted[("DatasetsExtracted", "bls_api")] == 4
    assert emitted[("DatasetsUnchanged", "bls_api")] == 4
    assert emitted[("RecordsLanded", "bls_api")] > 0
    assert emitted[("BytesLanded", "bls_api")] > 0
