"""Source faults: retried (urllib3), returned to the queue, deferred, or dead-lettered with a reason; never lost."""

from __future__ import annotations

import json
import os
import time

import pytest

from datalake.contracts import Source
from extractor.queues import ExtractQueues
from localrun.replay import ReplayResponse, ReplayServer
from localrun.runner import sqs_lambda_record
from tests.conftest import load_event
from tests.support.aws_limits import StrictSqs
from tests.unit.extractor.support import (
    EXTRACT_QUEUE_ARN,
    MISSING_SERIES,
    REPLAY,
    DeferralSpy,
    failed_ids,
    replay_dir_with,
    request,
    sqs_event,
    sqs_record,
)

NOT_PROCESSED = {
    "status": "REQUEST_NOT_PROCESSED",
    "responseTime": 12,
    "message": [
        "Request could not be serviced, as the daily threshold for total number of requests allocated to the user "
        "has been reached."
    ],
    "Results": {},
}
SERIES = ["LNS14000000", "CES0000000001", "PRS30006032"]


def bls_batch(run_id: str = "20261121T080000Z-0a1b2c3d"):
    return sqs_event([request(Source.BLS_API, s, run_id=run_id, start_year=2024, end_year=2026) for s in SERIES])


def manifests(aws) -> list[str]:
    return [k for k in aws.keys() if k.endswith(".manifest.json")]


class FailFirst:
    """A hook: the first ``times`` requests to an endpoint get ``answer``; then the source recovers."""

    def __init__(self, endpoint: str, answer: ReplayResponse, times: int) -> None:
        self.endpoint, self.answer, self.times, self.served = endpoint, answer, times, 0

    def __call__(self, req, proceed):
        if req.endpoint == self.endpoint and self.served < self.times:
            self.served += 1
            return self.answer
        return proceed()


# -- permanent failures: the DLQ, with the reason ---------------------------------------------------------------


@pytest.fixture
def missing_series_replay(tmp_path):
    folder = replay_dir_with(
        tmp_path, (REPLAY, "bls_api"), (REPLAY, "socrata"), (MISSING_SERIES, "bls_api/series_does_not_exist.json")
    )
    with ReplayServer(folder) as server:
        yield server


def test_nonexistent_series_malformed_request_and_missing_dataset_end_in_the_dlq(
    aws, bind, missing_series_replay, lambda_context
):
    handler = bind(missing_series_replay)
    event = load_event("extractor_dead_letters.json")

    response = handler.lambda_handler(event, lambda_context)

    # THEN every record is done (none returns to the queue: retrying cannot help) ...
    assert response == {"batchItemFailures": []}
    # ... and each sits in the ExtractDLQ, its original body unchanged, with the reason
    dead = {m["Body"]: m["MessageAttributes"] for m in aws.dlq_messages()}
    assert set(dead) == {r["body"] for r in event["Records"]}
    by_dataset = {json.loads(body)["dataset"]: attrs for body, attrs in dead.items()}
    missing = by_dataset["CES9999999999"]
    assert missing["failure_reason"]["StringValue"] == "Series does not exist for Series CES9999999999"
    assert missing["error_type"]["StringValue"] == "series_not_found"
    assert missing["source"]["StringValue"] == "bls_api"
    malformed = by_dataset["../../etc/passwd"]
    assert malformed["error_type"]["StringValue"] == "invalid_message"
    assert "dataset" in malformed["failure_reason"]["StringValue"]
    assert by_dataset["zz00-0404"]["error_type"]["StringValue"] == "dataset_not_found"
    # AND nothing was landed, and people are told (stage.failed) for the two well-formed requests
    assert aws.keys() == []
    failed = sorted(e["dataset"] for e in aws.events() if e["event_type"] == "stage.failed")
    assert failed == ["CES9999999999", "zz00-0404"]


def test_a_malformed_message_reaches_the_dlq_with_its_reason_even_when_the_reason_holds_characters_sqs_refuses(
    aws, bind, lambda_context
):
    # GIVEN a body whose unknown field's name carries control characters (valid JSON, valid SQS text: escaped), so
    # the validation reason names them raw, and the DLQ refuses them as SQS does (moto takes any text)
    body = json.dumps({**json.loads(request("bls_api", "LNS14000000").model_dump_json()), "note\x01\x00": 1})
    strict = StrictSqs(aws.sqs)
    handler = bind(None, queues=ExtractQueues(os.environ["EXTRACT_DLQ_URL"], aws.extract_queue, strict))

    response = handler.lambda_handler({"Records": [sqs_record(body, "m-0")]}, lambda_context)

    # THEN the record is done, and its body sits in the DLQ unchanged with a reason SQS took (nothing was refused)
    assert response == {"batchItemFailures": []}
    assert strict.refused == []
    [dead] = aws.dlq_messages()
    assert dead["Body"] == body
    reason = dead["MessageAttributes"]["failure_reason"]["StringValue"]
    assert reason == "invalid ExtractRequest: body.note\ufffd\ufffd: Extra inputs are not permitted"
    assert dead["MessageAttributes"]["error_type"]["StringValue"] == "invalid_message"


def test_a_nonexistent_series_does_not_fail_its_neighbours(aws, bind, missing_series_replay, lambda_context):
    handler = bind(missing_series_replay)
    event = sqs_event([request("bls_api", s, start_year=2024, end_year=2026) for s in ("LNS14000000", "CES9999999999")])
    assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert missing_series_replay.counts["bls_api"] == 1  # one coalesced query for both
    assert [k.split("/")[2] for k in manifests(aws)] == ["LNS14000000"]
    assert [json.loads(m["Body"])["dataset"] for m in aws.dlq_messages()] == ["CES9999999999"]


def test_a_series_no_recording_holds_has_no_data_rather_than_not_existing(extractor, aws, replay, lambda_context):
    event = sqs_event([request("bls_api", "CUUR0000SA0", start_year=2025, end_year=2026)])
    assert extractor.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert aws.dlq_messages() == []
    [extracted] = aws.events()
    assert extracted["warnings"] == [
        "No Data Available for Series CUUR0000SA0 Year: 2025",
        "No Data Available for Series CUUR0000SA0 Year: 2026",
    ]


# -- REQUEST_NOT_PROCESSED: deferred with a growing visibility timeout, never dropped ---------------------------


def test_request_not_processed_defers_the_messages_and_they_land_later(bind, aws, replay, lambda_context):
    # GIVEN three series sent through the real queue, and BLS refusing (daily threshold reached)
    sqs = aws.sqs
    for s in SERIES:
        sqs.send_message(QueueUrl=aws.extract_queue, MessageBody=request("bls_api", s).model_dump_json())
    replay.add_hook(
        lambda req, proceed: ReplayResponse.json_body(NOT_PROCESSED) if req.endpoint == "bls_api" else proceed()
    )
    queues = DeferralSpy(aws)
    extractor = bind(replay, queues=queues)
    messages = sqs.receive_message(QueueUrl=aws.extract_queue, MaxNumberOfMessages=10, AttributeNames=["All"])[
        "Messages"
    ]
    event = {"Records": [sqs_lambda_record(m, EXTRACT_QUEUE_ARN) for m in messages]}

    # WHEN the extractor handles the batch
    response = extractor.lambda_handler(event, lambda_context)

    # THEN every record fails (stays in the queue), deferred 15 minutes on this first receive
    assert failed_ids(response) == {m["MessageId"] for m in messages}
    assert queues.deferred == [900, 900, 900]
    assert replay.counts["bls_api"] == 1
    counts = sqs.get_queue_attributes(
        QueueUrl=aws.extract_queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "3")
    assert aws.dlq_messages() == [] and manifests(aws) == []  # invisible for now: not deleted, not dead-lettered

    # WHEN the deferral is over (made visible here instead of waiting) and the quota has reset
    for m in messages:
        sqs.change_message_visibility(QueueUrl=aws.extract_queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    replay.clear_hooks()
    again = sqs.receive_message(QueueUrl=aws.extract_queue, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in again} == {"2"}
    response = extractor.lambda_handler(
        {"Records": [sqs_lambda_record(m, EXTRACT_QUEUE_ARN) for m in again]}, lambda_context
    )

    # THEN all three land
    assert response == {"batchItemFailures": []}
    assert sorted(k.split("/")[2] for k in manifests(aws)) == sorted(SERIES)


def test_a_second_refusal_defers_twice_as_long(bind, aws, replay, lambda_context):
    replay.add_hook(lambda req, proceed: ReplayResponse.json_body(NOT_PROCESSED))
    queues = DeferralSpy(aws, forward=False)
    extractor = bind(replay, queues=queues)
    event = bls_batch()
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = "2"
    assert len(failed_ids(extractor.lambda_handler(event, lambda_context))) == 3
    assert queues.deferred == [1800, 1800, 1800]


# -- transient faults: retried by urllib3 within the budget, else returned to the queue -------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_with_backoff(extractor, aws, replay, lambda_context, status):
    replay.add_hook(FailFirst("bls_api", ReplayResponse(status=status, body=b"Internal error"), times=2))
    assert extractor.lambda_handler(bls_batch(), lambda_context) == {"batchItemFailures": []}
    assert replay.counts["bls_api"] == 3  # two failures, then the answer: one query's retries
    assert len(manifests(aws)) == 3


def test_429_honours_retry_after(extractor, aws, replay, lambda_context):
    replay.add_hook(
        FailFirst("socrata_rows", ReplayResponse(status=429, body=b"{}", headers={"Retry-After": "2"}), times=1)
    )
    started = time.monotonic()
    response = extractor.lambda_handler(sqs_event([request("socrata", "utrz-jf79")]), lambda_context)
    assert response == {"batchItemFailures": []}
    assert time.monotonic() - started >= 2.0  # it waited as told, not the (short) backoff
    assert replay.counts["socrata_rows"] == 2
    assert [e["event_type"] for e in aws.events()] == ["dataset.extracted"]


def test_a_read_timeout_is_retried(bind, aws, replay, lambda_context):
    extractor = bind(replay, read_timeout=1.0)
    replay.add_hook(FailFirst("datausa", ReplayResponse(status=200, body=b"{}", delay_seconds=2.5), times=1))
    response = extractor.lambda_handler(sqs_event([request("datausa", "population")]), lambda_context)
    assert response == {"batchItemFailures": []}
    assert replay.counts["datausa"] == 2
    assert len(manifests(aws)) == 1


def test_a_connection_reset_is_retried(extractor, aws, replay, lambda_context):
    replay.add_hook(FailFirst("bls_api", ReplayResponse(reset=True), times=1))
    assert extractor.lambda_handler(bls_batch(), lambda_context) == {"batchItemFailures": []}
    assert replay.counts["bls_api"] == 2


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(ReplayResponse(status=500, body=b"down"), id="persistent-500"),
        pytest.param(ReplayResponse(status=429, body=b"{}", headers={"Retry-After": "1"}), id="persistent-429"),
        pytest.param(ReplayResponse(status=200, body=b"{}", delay_seconds=2.5), id="persistent-timeout"),
        pytest.param(
            ReplayResponse(status=200, body=json.dumps(NOT_PROCESSED).encode(), truncate_after=40), id="truncated"
        ),
        pytest.param(ReplayResponse(status=200, body=b"<html>Bad gateway</html>"), id="html-with-200"),
    ],
)
def test_a_source_that_stays_down_returns_its_records_to_the_queue(bind, aws, replay, lambda_context, fault):
    # a read timeout short enough for the slow answer to time out, long enough for a healthy one on a loaded machine
    extractor = bind(replay, read_timeout=1.0)
    # GIVEN the BLS API failing on every attempt, and a DataUSA request in the same batch
    replay.add_hook(lambda req, proceed: fault if req.endpoint == "bls_api" else proceed())
    event = bls_batch()
    event["Records"].append(sqs_event([request("datausa", "population")])["Records"][0] | {"messageId": "datausa"})

    # WHEN the batch is handled
    response = extractor.lambda_handler(event, lambda_context)

    # THEN exactly the BLS records fail (SQS redelivers them); nothing is dead-lettered; the neighbour lands
    assert failed_ids(response) == {"m-0", "m-1", "m-2"}
    assert aws.dlq_messages() == []
    assert [k.split("/")[1] for k in manifests(aws)] == ["datausa"]

    # AND when the source is back, the redelivered records land: nothing was lost
    replay.clear_hooks()
    redelivered = {"Records": [r for r in event["Records"] if r["messageId"] in failed_ids(response)]}
    assert extractor.lambda_handler(redelivered, lambda_context) == {"batchItemFailures": []}
    assert sorted(k.split("/")[2] for k in manifests(aws) if "/bls_api/" in k) == sorted(SERIES)


def test_a_retry_after_beyond_the_time_budget_fails_fast(extractor, aws, replay, lambda_context):
    # GIVEN 20 s left in the invocation (a 15 s reserve: a 5 s budget) and Socrata asking to wait a minute
    lambda_context.remaining_ms = 20_000
    replay.add_hook(lambda req, proceed: ReplayResponse(status=429, body=b"{}", headers={"Retry-After": "60"}))
    started = time.monotonic()
    response = extractor.lambda_handler(sqs_event([request("socrata", "utrz-jf79")]), lambda_context)
    # THEN it does not wait for the source: the record fails after the one request, and returns to the queue
    assert failed_ids(response) == {"m-0"}
    assert replay.counts["socrata_views"] == 1  # not asked again: the wait it was told would outlive the budget
    assert time.monotonic() - started < 30  # far from the 60 s asked for, whatever the machine's load
    assert replay.counts["socrata_views"] == 1


@pytest.mark.sockets
def test_a_message_redriven_from_the_dlq_once_fixed_is_processed(aws, bind, lambda_context, tmp_path):
    # GIVEN a request dead-lettered because its dataset did not exist
    folder = replay_dir_with(tmp_path, (REPLAY, "socrata"))
    with ReplayServer(folder) as server:
        handler = bind(server)
        event = sqs_event([request("socrata", "zz00-0404")])
        assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
        [dead] = aws.dlq_messages()

        # WHEN the dataset is published and the operator redrives the DLQ (the same body, the same run id)
        for suffix in (".json", ".views.json"):
            (folder / "socrata" / f"zz00-0404{suffix}").write_bytes(
                (folder / "socrata" / f"utrz-jf79{suffix}").read_bytes()
            )
        redriven = {"Records": [event["Records"][0] | {"body": dead["Body"], "messageId": "redriven"}]}
        response = handler.lambda_handler(redriven, lambda_context)

    # THEN it is extracted, not answered from a remembered failure
    assert response == {"batchItemFailures": []}
    assert [k for k in manifests(aws) if "/zz00-0404/" in k]
    assert aws.dlq_messages() == []
