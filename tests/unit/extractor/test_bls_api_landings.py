"""BLS API landings: each POST's response stored once, byte for byte, and one manifest per series selecting it."""

from __future__ import annotations

import hashlib
import json

import pytest
from botocore.exceptions import ClientError

from datalake.contracts import Manifest
from datalake.lake import LakeStore
from tests.unit.extractor.support import (
    API_KEY,
    ServedBodies,
    failed_ids,
    request,
    response_objects,
    sqs_event,
    with_run_id,
)

SERIES = ["LNS14000000", "CES0000000001", "PRS30006032", "SMS38000001000000001"]


def manifests(aws, series_id: str | None = None) -> list[Manifest]:
    prefix = f"landing/bls_api/{series_id}/" if series_id else "landing/bls_api/"
    keys = [k for k in aws.keys(prefix) if k.endswith(".manifest.json")]
    return [Manifest.model_validate_json(aws.s3.get_object(Bucket=aws.bucket, Key=k)["Body"].read()) for k in keys]


def odd_layout(req, proceed):
    """The replay's answer re-laid out (indented, CRLF, ASCII escapes): a rewrite would not keep these bytes."""
    answer = proceed()
    if req.endpoint == "bls_api":
        text = json.dumps(json.loads(answer.body), indent=3, ensure_ascii=True)
        answer.body = text.replace("\n", "\r\n").encode() + b"\r\n"
    return answer


def test_the_response_is_stored_byte_for_byte_once_and_every_manifest_selects_its_series(
    extractor, aws, replay, lambda_context
):
    # GIVEN BLS answering in a layout of its own, and a record of the bytes the replay sent
    served = ServedBodies()
    replay.add_hook(served)
    replay.add_hook(odd_layout)

    # WHEN a batch of four series is extracted (one coalesced POST)
    event = sqs_event([request("bls_api", s, start_year=2024, end_year=2026) for s in SERIES])
    assert extractor.lambda_handler(event, lambda_context) == {"batchItemFailures": []}

    # THEN the one response is stored once, exactly as the replay sent it
    [body] = served.bodies
    assert b"\r\n" in body
    [(key, stored)] = response_objects(aws.s3, aws.bucket).items()
    assert stored == body
    digest = hashlib.sha256(body).hexdigest()
    assert key == f"landing/bls_api/_responses/ingest_date=2026-11-21/20261121T080000Z-{digest[:12]}.json"
    document = json.loads(body)
    head = aws.s3.head_object(Bucket=aws.bucket, Key=key)
    assert head["Metadata"] == {
        "run-id": "20261121T080000Z-0a1b2c3d",
        "source-url": replay.environment()["BLS_API_URL"].rstrip("/") + "/#startyear=2024&endyear=2026",
        "content-sha256": digest,
        "record-count": str(sum(len(s["data"]) for s in document["Results"]["series"])),
    }
    # AND each series has its own manifest, whose one part is that object, at the version written, selecting it
    by_series = {m.dataset: m for m in manifests(aws)}
    assert sorted(by_series) == sorted(SERIES)
    counts = {s["seriesID"]: len(s["data"]) for s in document["Results"]["series"]}
    for series_id, manifest in by_series.items():
        [part] = manifest.parts
        assert (part.key, part.sha256, part.bytes) == (key, digest, len(body))
        assert part.version_id == head["VersionId"]
        assert part.select_series == series_id
        assert part.records == manifest.record_count == counts[series_id]
    # AND the only objects landed are the response and the four manifests
    assert len(aws.keys("landing/")) == 1 + len(SERIES)


def test_only_a_response_with_a_changed_series_is_written_and_only_that_series_lands(
    extractor, aws, replay, lambda_context
):
    event = sqs_event([request("bls_api", s, start_year=2024, end_year=2026) for s in SERIES])
    extractor.lambda_handler(event, lambda_context)
    first = response_objects(aws.s3, aws.bucket)
    aws.events()

    # GIVEN BLS revising one value of one series the next day
    def revise(req, proceed):
        answer = proceed()
        if req.endpoint == "bls_api":
            document = json.loads(answer.body)
            for series in document["Results"]["series"]:
                if series["seriesID"] == "LNS14000000":
                    series["data"][0]["value"] = "9.9"
            answer.body = json.dumps(document).encode()
        return answer

    replay.add_hook(revise)

    # WHEN the series are extracted again
    response = extractor.lambda_handler(with_run_id(event, "20261122T080000Z-5e6f7a8b"), lambda_context)

    # THEN the new response is stored (once), and only the revised series has a new landing
    assert response == {"batchItemFailures": []}
    second = response_objects(aws.s3, aws.bucket)
    [new_key] = set(second) - set(first)
    assert json.loads(second[new_key])["Results"]["series"]
    assert len(manifests(aws, "LNS14000000")) == 2
    assert all(len(manifests(aws, s)) == 1 for s in SERIES if s != "LNS14000000")
    events = aws.events()
    assert sorted((e["event_type"], e["dataset"]) for e in events) == sorted(
        [("dataset.extracted", "LNS14000000")] + [("dataset.unchanged", s) for s in SERIES if s != "LNS14000000"]
    )
    [extracted] = [e for e in events if e["event_type"] == "dataset.extracted"]
    assert extracted["keys"] == [new_key]


def test_a_rerun_over_unchanged_sources_writes_no_response_and_no_manifest(extractor, aws, replay, lambda_context):
    event = sqs_event([request("bls_api", s, start_year=2024, end_year=2026) for s in SERIES])
    extractor.lambda_handler(event, lambda_context)
    landed = sorted((v["Key"], v["VersionId"]) for v in aws.versions("landing/"))
    assert len(landed) == 1 + len(SERIES)

    extractor.lambda_handler(with_run_id(event, "20261122T080000Z-5e6f7a8b"), lambda_context)

    assert replay.counts["bls_api"] == 2  # asked again ...
    assert sorted((v["Key"], v["VersionId"]) for v in aws.versions("landing/")) == landed  # ... nothing written


@pytest.mark.parametrize(("keyed", "windows"), [(True, [(2007, 2026), (1987, 2006)]), (False, None)])
def test_a_backfill_lands_one_part_per_year_window_each_a_stored_response(
    extractor, aws, replay, lambda_context, keyed, windows
):
    # GIVEN a backfill of 1987-2026 (the derived PR series hold every year since 1987)
    if keyed:
        aws.put_api_key()
    windows = windows or [(2017, 2026), (2007, 2016), (1997, 2006), (1987, 1996)]
    served = ServedBodies()
    replay.add_hook(served)
    event = sqs_event([request("bls_api", s, start_year=1987, end_year=2026) for s in ("PRS30006032", "PRS30006092")])

    # WHEN it is extracted
    assert extractor.lambda_handler(event, lambda_context) == {"batchItemFailures": []}

    # THEN one POST per window (20 years with a key, 10 without), each response stored byte for byte
    queries = [r.json() for r in replay.log if r.endpoint == "bls_api"]
    assert [(int(q["startyear"]), int(q["endyear"])) for q in queries] == windows
    stored = response_objects(aws.s3, aws.bucket)
    assert sorted(stored.values()) == sorted(served.bodies)
    # AND each series' manifest has one part per window, newest first, selecting the series
    for series_id in ("PRS30006032", "PRS30006092"):
        [manifest] = manifests(aws, series_id)
        assert [p.select_series for p in manifest.parts] == [series_id] * len(windows)
        years = []
        for part, (start, end) in zip(manifest.parts, windows, strict=True):
            document = json.loads(stored[part.key])
            [series] = [s for s in document["Results"]["series"] if s["seriesID"] == series_id]
            assert {start <= int(o["year"]) <= end for o in series["data"]} == {True}
            assert part.records == len(series["data"])
            years.extend(int(o["year"]) for o in series["data"])
        assert (min(years), max(years)) == (1987, 2026)
        assert manifest.record_count == len(years)
    assert not [body for body in stored.values() if API_KEY.encode() in body]


class SlowDownOnce:
    """An S3 client that refuses its first PutObject (SlowDown) and keeps the key of every PutObject asked of it."""

    def __init__(self, s3) -> None:
        self.s3 = s3
        self.calls: list[str] = []

    def __getattr__(self, name: str):
        return getattr(self.s3, name)

    def put_object(self, **kwargs):
        self.calls.append(kwargs["Key"])
        if len(self.calls) == 1:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "Reduce your request rate."}}, "PutObject")
        return self.s3.put_object(**kwargs)


def test_a_failed_write_of_the_response_fails_that_record_and_the_next_series_writes_it(
    bind, aws, replay, lambda_context
):
    # GIVEN S3 refusing the first write of the batch (the response object, needed first by the first series)
    s3 = SlowDownOnce(aws.s3)
    extractor = bind(replay, lake=LakeStore(aws.bucket, s3))
    calls = s3.calls
    event = sqs_event([request("bls_api", s, start_year=2024, end_year=2026) for s in SERIES])

    # WHEN the batch is extracted
    response = extractor.lambda_handler(event, lambda_context)

    # THEN only the first record fails (SQS redelivers it); the next series wrote the response, once
    assert failed_ids(response) == {"m-0"}
    assert [k for k in calls if "/_responses/" in k] == [calls[0], calls[1]]
    assert len(response_objects(aws.s3, aws.bucket)) == 1
    assert sorted(m.dataset for m in manifests(aws)) == sorted(SERIES[1:])
