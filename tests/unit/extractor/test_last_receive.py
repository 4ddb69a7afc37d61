"""The last receive: a request that keeps failing reaches the ExtractDLQ with the reason of its last failure, and a
payload that stays bad is landed as it is, for quarantine.

SQS moves a message to the DLQ after ``maxReceiveCount`` receives, with no reason attached. So on that receive the
extractor dead-letters the request itself, with ``failure_reason``, and tells people (``stage.failed``). A BLS API,
DataUSA or Socrata payload that is still bad then (HTML with 200, truncated JSON, Socrata metadata without columns)
is landed byte for byte instead: the raw payload survives and the transformer quarantines it with its reason
(docs/architecture.md: bad input is quarantined).
"""

from __future__ import annotations

import json
import re

import pytest

from datalake.contracts import Source
from localrun.replay import ReplayResponse
from localrun.template import load_template, resources_of
from tests.unit.extractor.support import failed_ids, request, sqs_record


def test_the_extractor_knows_the_extract_queues_max_receive_count():
    template = load_template()
    queue = resources_of(template, "AWS::SQS::Queue")["ExtractQueue"]
    env = resources_of(template, "AWS::Serverless::Function")["ExtractorFunction"]["Properties"]["Environment"]
    assert int(env["Variables"]["EXTRACT_MAX_RECEIVE_COUNT"]) == queue["Properties"]["RedrivePolicy"]["maxReceiveCount"]


def batch(receive_count: int) -> dict:
    requests = [request(Source.DATAUSA, "population"), request(Source.SOCRATA, "utrz-jf79")]
    records = [sqs_record(r.model_dump_json(), f"m-{i}", receive_count=receive_count) for i, r in enumerate(requests)]
    return {"Records": records}


def test_a_transient_failure_on_the_last_receive_is_dead_lettered_with_its_reason(
    extractor, aws, replay, lambda_context
):
    # GIVEN DataUSA failing on every attempt, and a Socrata request in the same batch
    fault, reason = ReplayResponse(status=503, body=b"down"), r"HTTP 503 after retries"
    replay.add_hook(lambda req, proceed: fault if req.endpoint == "datausa" else proceed())

    # WHEN the batch is received for the 7th time: the DataUSA record fails and returns to the queue
    assert failed_ids(extractor.lambda_handler(batch(7), lambda_context)) == {"m-0"}
    assert aws.dlq_messages() == []

    # AND on the 8th (the ExtractQueue's maxReceiveCount) it is done: in the DLQ, with the reason of that failure
    assert extractor.lambda_handler(batch(8), lambda_context) == {"batchItemFailures": []}
    [dead] = aws.dlq_messages()
    attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attributes["dataset"] == "population" and attributes["receive_count"] == "8"
    assert attributes["failure_reason"]
    assert re.search(reason, attributes["failure_reason"]), attributes["failure_reason"]
    failed = [e for e in aws.events() if e["event_type"] == "stage.failed"]
    assert [(e["dataset"], e["stage"]) for e in failed] == [("population", "extractor")]
    # the neighbour landed both times (its second landing is unchanged)
    assert any("/socrata/utrz-jf79/" in k for k in aws.keys())


HTML = b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>"
TRUNCATED = b'[{"id":"S1","nom":"Servei'


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        pytest.param("datausa", HTML, id="datausa-html-with-200"),
        pytest.param("datausa", TRUNCATED, id="datausa-truncated-json"),
        pytest.param("socrata_rows", HTML, id="socrata-page-html-with-200"),
        pytest.param("socrata_views", HTML, id="socrata-metadata-html-with-200"),
        pytest.param("socrata_views", b'{"id":"utrz-jf79","columns":[]}', id="socrata-metadata-without-columns"),
    ],
)
def test_a_payload_still_bad_on_the_last_receive_lands_as_it_is(extractor, aws, replay, lambda_context, endpoint, body):
    # GIVEN a source answering a bad body with 200 on every attempt
    bad = ReplayResponse(status=200, body=body)
    replay.add_hook(lambda req, proceed: bad if req.endpoint == endpoint else proceed())
    dataset = "population" if endpoint == "datausa" else "utrz-jf79"
    mine = "m-0" if endpoint == "datausa" else "m-1"

    # WHEN it is received for the 7th time, THEN it fails (retried later) and nothing of it lands
    assert failed_ids(extractor.lambda_handler(batch(7), lambda_context)) == {mine}
    assert not [k for k in aws.keys() if f"/{dataset}/" in k]

    # WHEN it is received for the 8th and last time, THEN it lands byte for byte, and nothing is dead-lettered
    assert extractor.lambda_handler(batch(8), lambda_context) == {"batchItemFailures": []}
    assert aws.dlq_messages() == []
    landed = [k for k in aws.keys() if f"/{dataset}/" in k and not k.endswith(".manifest.json")]
    bodies = [aws.s3.get_object(Bucket=aws.bucket, Key=k)["Body"].read() for k in landed]
    assert body in bodies
    [manifest_key] = [k for k in aws.keys() if f"/{dataset}/" in k and k.endswith(".manifest.json")]
    manifest = json.loads(aws.s3.get_object(Bucket=aws.bucket, Key=manifest_key)["Body"].read())
    assert any("bad payload landed on the last receive" in w for w in manifest.get("warnings", [])), manifest


def bls_batch(receive_count: int, series: list[str]) -> dict:
    requests = [request(Source.BLS_API, s, start_year=2024, end_year=2026) for s in series]
    return {
        "Records": [
            sqs_record(r.model_dump_json(), f"m-{i}", receive_count=receive_count) for i, r in enumerate(requests)
        ]
    }


@pytest.mark.parametrize("body", [HTML, b'{"status":"REQUEST_SUCCEEDED","Results":{"ser'], ids=["html", "truncated"])
def test_a_bls_api_response_still_bad_on_the_last_receive_lands_once_for_its_series(
    extractor, aws, replay, lambda_context, body
):
    # GIVEN the BLS API answering a body that is not a BLS answer, with 200, on every attempt
    series = ["LNS14000000", "PRS30006032"]
    bad = ReplayResponse(status=200, body=body)
    replay.add_hook(lambda req, proceed: bad if req.endpoint == "bls_api" else proceed())

    # WHEN the batch is received for the 7th time, THEN both series fail (retried later) and nothing lands
    assert failed_ids(extractor.lambda_handler(bls_batch(7, series), lambda_context)) == {"m-0", "m-1"}
    assert aws.keys("landing/bls_api/") == []

    # WHEN it is received for the 8th and last time, THEN the body is stored once, as received, and each series
    # lands a manifest that points at it and says why, and nothing is dead-lettered
    assert extractor.lambda_handler(bls_batch(8, series), lambda_context) == {"batchItemFailures": []}
    assert aws.dlq_messages() == []
    [stored] = aws.keys("landing/bls_api/_responses/")
    assert aws.s3.get_object(Bucket=aws.bucket, Key=stored)["Body"].read() == body
    manifests = [k for k in aws.keys("landing/bls_api/") if k.endswith(".manifest.json")]
    assert sorted(k.split("/")[2] for k in manifests) == sorted(series)
    for key in manifests:
        manifest = json.loads(aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read())
        assert [p["key"] for p in manifest["parts"]] == [stored]
        assert any("bad payload landed on the last receive" in w for w in manifest["warnings"]), manifest


def test_a_bls_api_failure_other_than_a_bad_body_is_still_dead_lettered_on_the_last_receive(
    extractor, aws, replay, lambda_context
):
    # GIVEN the BLS API down (503) on every attempt: there is no payload to keep
    replay.add_hook(
        lambda req, proceed: ReplayResponse(status=503, body=b"down") if req.endpoint == "bls_api" else proceed()
    )

    # WHEN the last receive comes, THEN the series go to the DLQ with the reason, and nothing lands
    assert extractor.lambda_handler(bls_batch(8, ["LNS14000000"]), lambda_context) == {"batchItemFailures": []}
    [dead] = aws.dlq_messages()
    assert "HTTP 503" in dead["MessageAttributes"]["failure_reason"]["StringValue"]
    assert aws.keys("landing/bls_api/") == []
