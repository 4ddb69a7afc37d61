"""Socrata paging and metadata, DataUSA current and legacy shapes, through the handler and the replay."""

from __future__ import annotations

import json

import pytest

from datalake.contracts import Manifest
from localrun.replay import ReplayResponse
from tests.unit.extractor.support import REPLAY, failed_ids, request, sqs_event


def landed_manifest(aws, source: str, dataset: str) -> Manifest:
    [key] = [k for k in aws.keys(f"landing/{source}/{dataset}/") if k.endswith(".manifest.json")]
    return Manifest.model_validate_json(aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read())


def body(aws, key: str) -> bytes:
    return aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read()


def test_paging_returns_every_row_exactly_once(extractor, aws, replay, lambda_context):
    # GIVEN a 62-row dataset and a page size of 7 (smaller than the dataset, not a divisor of it)
    source_rows = json.loads((REPLAY / "socrata" / "utrz-jf79.json").read_bytes())
    assert len(source_rows) == 62

    # WHEN it is extracted
    event = sqs_event([request("socrata", "utrz-jf79", page_size=7)])
    assert extractor.lambda_handler(event, lambda_context) == {"batchItemFailures": []}

    # THEN nine pages were asked for in :id order (8 full, 1 short), each landed as its own part
    pages = [r for r in replay.log if r.endpoint == "socrata_rows"]
    assert [(r.query["$order"], r.query["$limit"], r.query["$offset"]) for r in pages] == [
        (":id", "7", str(offset)) for offset in range(0, 63, 7)
    ]
    manifest = landed_manifest(aws, "socrata", "utrz-jf79")
    data = manifest.data_parts
    assert [p.records for p in data] == [7] * 8 + [6]
    # AND the pages, concatenated, are the dataset: every row once, in order
    landed_rows = [row for part in data for row in json.loads(body(aws, part.key))]
    assert [{k: v for k, v in row.items() if k != ":id"} for row in landed_rows] == source_rows
    assert len({row[":id"] for row in landed_rows}) == 62  # each row carries its system id, none twice
    assert manifest.record_count == 62
    # AND the proof that it is whole: counted before and after paging, 62 rows received, 62 distinct ids
    assert manifest.proof == {
        "count_before": 62,
        "count_after": 62,
        "rows": 62,
        "duplicate_ids": 0,
        "rows_without_id": 0,
        "pages": 9,
        "page_size": 7,
        "invocations": 1,
    }
    # AND the metadata is landed beside the rows, byte for byte
    [metadata] = [p for p in manifest.parts if p.role == "metadata"]
    assert body(aws, metadata.key) == (REPLAY / "socrata" / "utrz-jf79.views.json").read_bytes()
    assert all(p.key.split("/")[-1].startswith("part-") for p in manifest.parts)


def test_a_dataset_the_size_of_a_page_stops_at_the_empty_page(extractor, aws, replay, lambda_context):
    event = sqs_event([request("socrata", "amca-cgrp", page_size=1000)])
    assert extractor.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    manifest = landed_manifest(aws, "socrata", "amca-cgrp")
    assert [p.records for p in manifest.data_parts] == [1000]  # the empty second page is not landed
    assert replay.counts["socrata_rows"] == 2
    landed = [{k: v for k, v in row.items() if k != ":id"} for row in json.loads(body(aws, manifest.data_parts[0].key))]
    assert landed == json.loads((REPLAY / "socrata" / "amca-cgrp.json").read_bytes())


def test_an_unchanged_dataset_with_new_metadata_counters_is_unchanged(extractor, aws, replay, lambda_context):
    extractor.lambda_handler(sqs_event([request("socrata", "9uvn-hv6j", page_size=50)]), lambda_context)
    aws.events()

    def busier_views(req, proceed):
        answer = proceed()
        if req.endpoint == "socrata_views":
            views = json.loads(answer.body)
            views["viewCount"] = 123456  # the portal counts views: the metadata changes every day
            answer.body = json.dumps(views).encode()
        return answer

    replay.add_hook(busier_views)
    rerun = sqs_event([request("socrata", "9uvn-hv6j", page_size=50, run_id="20261122T080000Z-0a1b2c3d")])
    extractor.lambda_handler(rerun, lambda_context)
    assert [e["event_type"] for e in aws.events()] == ["dataset.unchanged"]


def test_the_app_token_is_sent_when_configured(extractor, aws, replay, lambda_context):
    import os

    aws.ssm.put_parameter(
        Name=os.environ["SOCRATA_APP_TOKEN_PARAM"], Value="app-token-Zq8x31", Type="SecureString", Overwrite=True
    )
    extractor.lambda_handler(sqs_event([request("socrata", "utrz-jf79")]), lambda_context)
    assert {r.headers.get("x-app-token") for r in replay.log} == {"app-token-Zq8x31"}
    for key in aws.keys():
        assert b"app-token-Zq8x31" not in body(aws, key)


def test_a_dataset_that_does_not_exist_is_dead_lettered_with_its_reason(extractor, aws, replay, lambda_context):
    event = sqs_event([request("socrata", "zz00-0404")])  # absent from the replay: Socrata 404s
    assert extractor.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    [dead] = aws.dlq_messages()
    assert json.loads(dead["Body"])["dataset"] == "zz00-0404"
    assert dead["Body"] == event["Records"][0]["body"]  # the original message, unchanged
    reason = dead["MessageAttributes"]["failure_reason"]["StringValue"]
    assert "zz00-0404" in reason and "404" in reason
    assert dead["MessageAttributes"]["error_type"]["StringValue"] == "dataset_not_found"
    assert aws.keys() == []
    [failed] = aws.events()
    assert (failed["event_type"], failed["stage"], failed["dataset"]) == ("stage.failed", "extractor", "zz00-0404")


def test_datausa_lands_the_tesseract_body_byte_for_byte(extractor, aws, replay, lambda_context):
    assert extractor.lambda_handler(sqs_event([request("datausa", "population")]), lambda_context) == {
        "batchItemFailures": []
    }
    manifest = landed_manifest(aws, "datausa", "population")
    [part] = manifest.parts
    assert body(aws, part.key) == (REPLAY / "datausa" / "population.json").read_bytes()
    assert part.records == 10
    [asked] = [r for r in replay.log if r.endpoint == "datausa"]
    assert asked.path == "/tesseract/data.jsonrecords"
    assert asked.query == {
        "cube": "acs_yg_total_population_1",
        "drilldowns": "Year,Nation",
        "locale": "en",
        "measures": "Population",
    }
    head = aws.s3.head_object(Bucket=aws.bucket, Key=part.key)["Metadata"]
    assert head["source-url"].startswith(replay.base_url + "/tesseract/data.jsonrecords?cube=")
    assert head["content-sha256"] == part.sha256 == manifest.content_sha256


@pytest.mark.sockets  # its own replay server, on 127.0.0.1
def test_datausa_legacy_endpoint_and_shape(aws, bind, lambda_context, tmp_path):
    from localrun.replay import ReplayServer

    legacy = {
        "data": [
            {
                "ID Nation": "01000US",
                "Nation": "United States",
                "ID Year": 2023,
                "Year": "2023",
                "Population": 332387540,
                "Slug Nation": "united-states",
            }
        ],
        "source": [{"measures": ["Population"], "name": "acs_yg_total_population_5"}],
    }
    (tmp_path / "datausa").mkdir()
    (tmp_path / "datausa" / "population.json").write_text(json.dumps(legacy, indent=2))
    with ReplayServer(tmp_path) as legacy_replay:
        handler = bind(legacy_replay, {"DATAUSA_URL": f"{legacy_replay.base_url}/api/data"})
        response = handler.lambda_handler(sqs_event([request("datausa", "population")]), lambda_context)
        assert response == {"batchItemFailures": []}
        [asked] = legacy_replay.log
        assert (asked.path, asked.query) == ("/api/data", {"drilldowns": "Nation", "measures": "Population"})
    assert landed_manifest(aws, "datausa", "population").record_count == 1


def test_an_html_page_served_with_200_fails_the_record_and_lands_nothing(extractor, aws, replay, lambda_context):
    replay.add_hook(
        lambda req, proceed: ReplayResponse(status=200, body=b"<html>Maintenance</html>", content_type="text/html")
    )
    response = extractor.lambda_handler(sqs_event([request("datausa", "population")]), lambda_context)
    assert failed_ids(response) == {"m-0"}
    assert aws.keys() == [] and aws.dlq_messages() == []
