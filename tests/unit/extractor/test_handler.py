"""The extractor handler, driven with events/extractor_*.json, against moto and the bundled replay."""

from __future__ import annotations

import json

from datalake.contracts import Manifest
from tests.conftest import load_event
from tests.unit.extractor.support import with_run_id


def test_batch_event_lands_every_request_and_announces_it(extractor, aws, replay, lambda_context):
    # GIVEN the SQS batch Lambda delivers: four BLS series, the pr bulk directory, DataUSA and a Socrata dataset
    event = load_event("extractor_batch.json")

    # WHEN the extractor handles it
    response = extractor.lambda_handler(event, lambda_context)

    # THEN nothing fails, and every request has a committed landing (its manifest)
    assert response == {"batchItemFailures": []}
    manifests = [k for k in aws.keys() if k.endswith(".manifest.json")]
    datasets = sorted(k.split("/")[1] + "/" + k.split("/")[2] for k in manifests)
    assert datasets == sorted(
        [
            "bls_api/CES0000000001",
            "bls_api/LNS14000000",
            "bls_api/PRS30006032",
            "bls_api/SMS38000001000000001",
            "bls_bulk/pr",
            "datausa/population",
            "socrata/9uvn-hv6j",
        ]
    )
    # AND the four series cost one API call (coalesced), the bulk directory one listing and ten files
    assert replay.counts["bls_api"] == 1
    assert replay.counts["bls_bulk_listing"] == 1
    assert replay.counts["bls_bulk_file"] == 10
    # AND one dataset.extracted per request
    events = aws.events()
    assert sorted(e["event_type"] for e in events) == ["dataset.extracted"] * 7


def test_a_series_landing_points_at_the_raw_response_and_selects_its_series_with_its_warnings(
    extractor, aws, lambda_context
):
    extractor.lambda_handler(load_event("extractor_batch.json"), lambda_context)
    [manifest_key] = [k for k in aws.keys("landing/bls_api/PRS30006032/") if k.endswith(".manifest.json")]
    manifest = Manifest.model_validate_json(aws.s3.get_object(Bucket=aws.bucket, Key=manifest_key)["Body"].read())
    [part] = manifest.parts
    # the part is the coalesced response of the batch (four series), stored once under landing/bls_api/_responses/
    assert part.key.startswith("landing/bls_api/_responses/ingest_date=2026-11-21/20261121T080000Z-")
    assert part.select_series == "PRS30006032"
    body = json.loads(aws.s3.get_object(Bucket=aws.bucket, Key=part.key, VersionId=part.version_id)["Body"].read())
    assert len(body["Results"]["series"]) == 4
    [series] = [s for s in body["Results"]["series"] if s["seriesID"] == "PRS30006032"]
    observations = {(o["year"], o["period"]): o["value"] for o in series["data"]}
    assert observations[("2025", "Q01")] == "-0.6"  # the value in the bulk pr.data files
    assert {int(y) for y, _ in observations} == {2024, 2025, 2026}
    assert part.records == len(observations)  # the selected series' observations only
    head = aws.s3.head_object(Bucket=aws.bucket, Key=part.key)
    assert head["Metadata"]["run-id"] == "20261121T080000Z-3f9c2a71"
    assert head["Metadata"]["record-count"] == str(sum(len(s["data"]) for s in body["Results"]["series"]))
    # SMS38000001000000001 is recorded for 2014-2015 only: its 2024-2026 landing selects an empty series, and its
    # manifest carries the warnings (the messages about it, and those naming no series)
    [sms] = [k for k in aws.keys("landing/bls_api/SMS38000001000000001/") if k.endswith(".manifest.json")]
    sms_manifest = Manifest.model_validate_json(aws.s3.get_object(Bucket=aws.bucket, Key=sms)["Body"].read())
    assert sms_manifest.warnings == [
        f"No Data Available for Series SMS38000001000000001 Year: {year}" for year in (2024, 2025, 2026)
    ]
    assert sms_manifest.record_count == 0
    assert [(p.key, p.select_series) for p in sms_manifest.parts] == [(part.key, "SMS38000001000000001")]


def test_rerun_with_unchanged_sources_lands_nothing_and_sends_nothing_downstream(
    extractor, aws, replay, lambda_context
):
    # GIVEN a first run that landed everything
    event = load_event("extractor_batch.json")
    extractor.lambda_handler(event, lambda_context)
    landed = {v["Key"]: v["VersionId"] for v in aws.versions("landing/")}
    aws.events()

    # WHEN the next day's run asks for the same datasets and the sources have not changed
    response = extractor.lambda_handler(with_run_id(event, "20261122T080000Z-5e6f7a8b"), lambda_context)

    # THEN nothing is written (no new object, no new version: no manifest, so no transform message)
    assert response == {"batchItemFailures": []}
    assert {v["Key"]: v["VersionId"] for v in aws.versions("landing/")} == landed
    # AND each dataset reports dataset.unchanged, never dataset.extracted
    events = aws.events()
    assert sorted(e["event_type"] for e in events) == ["dataset.unchanged"] * 7
    assert {e["run_id"] for e in events} == {"20261122T080000Z-5e6f7a8b"}


def test_a_duplicate_delivery_is_idempotent_and_costs_no_api_call(extractor, aws, replay, lambda_context):
    event = load_event("extractor_batch.json")
    extractor.lambda_handler(event, lambda_context)
    calls = dict(replay.counts)
    landed = {v["Key"]: v["VersionId"] for v in aws.versions("landing/")}
    aws.events()

    response = extractor.lambda_handler(event, lambda_context)  # the same messages again, same run

    assert response == {"batchItemFailures": []}
    assert dict(replay.counts) == calls  # no source was asked again
    assert {v["Key"]: v["VersionId"] for v in aws.versions("landing/")} == landed
    assert aws.events() == []  # the stored results are returned; nothing is published twice
