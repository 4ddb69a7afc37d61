"""Two runs overlap: run A fetched the 2025-02 release, then run B fetched and committed 2026-08, then A commits.

Newer upstream data must win whichever run commits last: A's apply is a compare-and-set on the state's fetched_at
(under the survey's lease), so it writes nothing, and the mirror, the state and what the transformer stages stay at
B's release. The same holds for a single-object source (DataUSA) landed through the lander.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime

import pytest

from datalake.contracts import ExtractParams, ExtractRequest, Source
from datalake.events import publish_event
from datalake.lake import LakeStore
from datalake.lease import Lease
from datalake.state import StateStore, dataset_pk, utc_stamp
from extractor.bls_bulk import BulkMirror
from extractor.http import HttpClient
from extractor.landing import Lander
from extractor.snapshots import fetch_datausa
from localrun.replay import ReplayServer
from tests.unit.extractor.support import PR_2025_02, REPLAY, quick_session

MIRROR = "landing/bls_bulk/pr/"


def mirror_of(aws, replay: ReplayServer) -> BulkMirror:
    lake, state = LakeStore(aws.bucket, aws.s3), StateStore(aws.state_table, aws.ddb)
    http = HttpClient(quick_session())
    lander = Lander(lake, state, lambda event: publish_event(event, os.environ["PIPELINE_TOPIC_ARN"], aws.sns))
    return BulkMirror(http, replay.environment()["BLS_BULK_URL"], lake, state, lander, Lease(aws.state_table, aws.ddb))


def pr_request(run_id: str) -> ExtractRequest:
    return ExtractRequest(
        run_id=run_id,
        source=Source.BLS_BULK,
        dataset="pr",
        params=ExtractParams(),
        requested_at=datetime.now(UTC),
    )


def mirrored(aws) -> dict[str, str]:
    files = {}
    for key in aws.keys(MIRROR):
        name = key[len(MIRROR) :]
        if "/" not in name:
            files[name] = hashlib.sha256(aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read()).hexdigest()
    return files


def release(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (folder / "bls_bulk" / "pr").iterdir()}


@pytest.mark.sockets
def test_the_older_fetch_committing_last_changes_nothing(aws):
    with ReplayServer(PR_2025_02) as old, ReplayServer(REPLAY) as new:
        run_a, run_b = mirror_of(aws, old), mirror_of(aws, new)

        # GIVEN run A fetched the 2025-02 release (nothing written yet) ...
        fetched_a = run_a.fetch(pr_request("20261203T080000Z-0000000a"))
        # ... and run B, which started later, fetched the 2026-08 release and committed it
        fetched_b = run_b.fetch(pr_request("20261203T080100Z-0000000b"))
        outcome_b = run_b.apply(fetched_b)
        assert outcome_b["outcome"] == "extracted"
        aws.events()

        # WHEN run A commits last
        outcome_a = run_a.apply(fetched_a)

    # THEN A is superseded: the mirror, the state and the manifests are B's, newest upstream data
    assert outcome_a["outcome"] == "superseded"
    assert mirrored(aws) == release(REPLAY)
    state = StateStore(aws.state_table, aws.ddb).get(dataset_pk("bls_bulk", "pr"), "STATE")
    assert state["last_run_id"] == "20261203T080000Z-0000000a"  # A checked, ...
    assert state["manifest_key"] == outcome_b["manifest_key"]  # ... B's landing stays current
    assert state["fetched_at"] == utc_stamp(fetched_b.fetched_at)
    manifests = [k for k in aws.keys(MIRROR) if k.endswith(".manifest.json")]
    assert manifests == [outcome_b["manifest_key"]]
    # AND A told the pipeline nothing changed: no landing of older data, no false alarm downstream
    assert [e["event_type"] for e in aws.events()] == ["dataset.unchanged"]


@pytest.mark.sockets
def test_an_older_datausa_fetch_committing_last_is_superseded(aws):
    lake, state = LakeStore(aws.bucket, aws.s3), StateStore(aws.state_table, aws.ddb)
    lander = Lander(lake, state, lambda event: publish_event(event, os.environ["PIPELINE_TOPIC_ARN"], aws.sns))
    http = HttpClient(quick_session())
    with ReplayServer(REPLAY) as replay:
        url = replay.environment()["DATAUSA_URL"]
        request_a = pr_request("20261203T080000Z-0000000a").model_copy(
            update={"source": Source.DATAUSA, "dataset": "population"}
        )
        request_b = request_a.model_copy(update={"run_id": "20261203T080100Z-0000000b"})
        fetched_a = fetch_datausa(http, url, request_a)
        fetched_b = fetch_datausa(http, url, request_b)
        # B's body differs (a revision upstream): its hash would replace A's if A won
        fetched_b.content_sha256 = "b" * 64
        assert fetched_a.fetched_at < fetched_b.fetched_at
        landed_b = lander.land(fetched_b)
        landed_a = lander.land(fetched_a)
    assert landed_b["outcome"] == "extracted"
    assert landed_a["outcome"] == "superseded"
    assert state.get(dataset_pk("datausa", "population"), "STATE")["content_sha256"] == "b" * 64
