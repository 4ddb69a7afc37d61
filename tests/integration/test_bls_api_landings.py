"""BLS API from the replay to staging: the extractor stores each response as received, the transformer stages each
series from the responses its manifest selects (in-process moto, the bundled replay on 127.0.0.1)."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from localrun.replay import ReplayServer
from tests.unit.extractor.support import (
    API_KEY,
    REPLAY,
    ServedBodies,
    bound_handler,
    create_test_aws,
    request,
    response_objects,
    sqs_event,
)
from tests.unit.transformer.support import stage

pytestmark = pytest.mark.integration

SERIES = ("PRS30006032", "PRS85006092")


@pytest.fixture
def aws():
    with mock_aws():
        yield create_test_aws()


@pytest.fixture
def replay():
    with ReplayServer(REPLAY) as server:
        yield server


@pytest.fixture
def extractor(aws, replay):
    with bound_handler(aws, replay) as handler:
        yield handler


def staged_observations(aws) -> pa.Table:
    pages = aws.s3.get_paginator("list_objects_v2").paginate(Bucket=aws.bucket, Prefix="staging/bls_observation/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    tables = [pq.read_table(io.BytesIO(aws.s3.get_object(Bucket=aws.bucket, Key=k)["Body"].read())) for k in keys]
    return pa.concat_tables(tables)


def recorded(series_id: str) -> set[tuple[int, str]]:
    """(year, period) of every observation the replay holds for a derived PR series (1987-2026 in the bundle)."""
    document = json.loads((REPLAY / "bls_api" / "derived_pr_series_from_bulk_AllData.json").read_bytes())
    document = document.get("data", document)
    [series] = [s for s in document["Results"]["series"] if s["seriesID"] == series_id]
    return {(int(o["year"]), o["period"]) for o in series["data"] if 1987 <= int(o["year"]) <= 2026}


@pytest.mark.parametrize(("keyed", "posts"), [(True, 2), (False, 4)])
def test_a_backfill_split_into_windows_stages_every_year_from_the_stored_responses(
    aws, replay, extractor, lambda_context, keyed, posts
):
    # GIVEN a 1987-2026 backfill of two series: 2 windows of 20 years with a key, 4 of 10 without
    if keyed:
        aws.put_api_key()
    served = ServedBodies()
    replay.add_hook(served)
    event = sqs_event([request("bls_api", s, start_year=1987, end_year=2026) for s in SERIES])

    # WHEN the extractor lands it and the transformer stages each series' manifest
    assert extractor.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert replay.counts["bls_api"] == posts
    stored = response_objects(aws.s3, aws.bucket)
    assert sorted(stored.values()) == sorted(served.bodies) and len(stored) == posts
    manifests = [k for k in aws.keys("landing/bls_api/") if k.endswith(".manifest.json")]
    assert len(manifests) == len(SERIES)
    outcomes = [stage(aws, key) for key in manifests]

    # THEN every year of every window is staged, each observation once, each from the response it came in
    assert {o["status"] for o in outcomes} == {"staged"}
    table = staged_observations(aws)
    for series_id in SERIES:
        rows = table.filter(pc.equal(table["series_id"], series_id)).to_pylist()
        assert {(r["year"], r["period"]) for r in rows} == recorded(series_id)
        assert len(rows) == len(recorded(series_id))
        assert {r["year"] for r in rows} == set(range(1987, 2027))
        for row in rows:
            document = json.loads(stored[row["_source"]])
            [series] = [s for s in document["Results"]["series"] if s["seriesID"] == series_id]
            assert (str(row["year"]), row["period"]) in {(o["year"], o["period"]) for o in series["data"]}
    assert len({r["_source"] for r in table.to_pylist()}) == posts
    # AND the key is in no object the pipeline wrote (landing, staging)
    for key in aws.keys("landing/") + aws.keys("staging/"):
        obj = aws.s3.get_object(Bucket=aws.bucket, Key=key)
        assert API_KEY.encode() not in obj["Body"].read() and API_KEY not in json.dumps(obj["Metadata"])
