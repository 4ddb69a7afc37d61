"""Service behaviours around the merge: one writer per group, crash leftovers, multi-page landings, no-op landings."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

import pytest

from tests.unit.transformer.support import FIXTURES, PR_2026, api_response, new_service, observation, stage
from transformer.landing import LandingRef


def test_a_group_held_by_another_invocation_is_retried_later(aws):
    # GIVEN another invocation holding the lease of the series' group
    from datalake.lease import Lease, LeaseBusy

    key = aws.landings.bls_api("LNS14000000", [api_response("LNS14000000", [observation(2024, "M01", "4")])])
    aws.ddb.put_item(
        TableName=os.environ["STATE_TABLE"],
        Item={
            "pk": {"S": "LOCK#staging/bls_observation/source_kind=api/survey=ln/LNS14000000"},
            "sk": {"S": "LEASE"},
            "owner": {"S": "someone-else"},
            "expires_at": {"N": str(int(time.time()) + 600)},
        },
    )
    service = new_service()
    service.ports.locks = Lease(os.environ["STATE_TABLE"], aws.ddb, wait_seconds=0.3)
    landing = LandingRef(bucket=aws.bucket, key=key, etag="e")

    # WHEN it stages: THEN it gives up with a transient error (the message comes back later), writing nothing
    with pytest.raises(LeaseBusy):
        service.stage(landing, service.read_manifest(landing))
    assert aws.keys("staging/") == []

    # AND once the lease has expired, the landing stages and the lease is released
    aws.ddb.delete_item(
        TableName=os.environ["STATE_TABLE"],
        Key={"pk": {"S": "LOCK#staging/bls_observation/source_kind=api/survey=ln/LNS14000000"}, "sk": {"S": "LEASE"}},
    )
    assert service.stage(landing, service.read_manifest(landing)).status == "staged"
    assert aws.state_item("LOCK#staging/bls_observation/source_kind=api/survey=ln/LNS14000000", "LEASE") is None


def test_two_files_left_by_a_crash_are_folded_back_into_one(aws):
    # GIVEN a series staged twice over, and a crash that left the older file beside the newer one
    first = aws.landings.bls_api("LNS14000000", [api_response("LNS14000000", [observation(2023, "M01", "3")])])
    stage(aws, first)
    [old_file] = aws.keys("staging/bls_observation/")
    old_bytes = aws.get(old_file)
    later = aws.landings.bls_api(
        "LNS14000000",
        [api_response("LNS14000000", [observation(2024, "M01", "4")])],
        moment=datetime(2026, 11, 22, 8, 0, tzinfo=UTC),
    )
    stage(aws, later)
    aws.put(old_file, old_bytes)  # the delete that never happened
    assert len(aws.keys("staging/bls_observation/")) == 2

    # WHEN the group is merged again
    stage(aws, later)

    # THEN one file remains, holding both years once
    [only] = aws.keys("staging/bls_observation/")
    rows = aws.parquet(only).to_pylist()
    assert sorted((r["year"], r["value"]) for r in rows) == [(2023, 3.0), (2024, 4.0)]


def test_a_paged_socrata_landing_keeps_every_page_in_order(aws):
    rows = json.loads((FIXTURES / "9uvn-hv6j.json").read_bytes())
    pages = [json.dumps(rows[i : i + 50], ensure_ascii=False).encode() for i in range(0, len(rows), 50)]
    key = aws.landings.socrata("9uvn-hv6j", pages, (FIXTURES / "9uvn-hv6j.views.json").read_bytes())

    outcome = stage(aws, key)

    assert len(pages) == 3
    staged = aws.staging("socrata_9uvn_hv6j")
    assert staged.column("nom_del_centre").to_pylist() == [r.get("nom_del_centre") for r in rows]
    assert {s.rsplit("/", 1)[1] for s in staged.column("_source").to_pylist()} == {
        "part-00000.json",
        "part-00001.json",
        "part-00002.json",
    }
    assert outcome["table_counts"]["socrata_9uvn_hv6j"]["rows_in"] == 134


def test_a_sync_of_documentation_only_stages_nothing_and_says_so(aws):
    key = aws.landings.bulk_sync("pr", {"pr.txt": b"Major Sector Productivity and Costs (PR)\r\n"})

    outcome = stage(aws, key)

    assert outcome["status"] == "staged" and outcome["tables"] == []
    assert aws.keys("staging/") == [] and aws.keys("quarantine/") == []
    [event] = aws.events()
    assert event["event_type"] == "dataset.staged" and event["tables"] == []


def test_only_the_mapping_files_changed_rebuilds_the_series_from_the_mirror(aws):
    # GIVEN a full release synced and staged, then a sync where only pr.measure changed
    stage(aws, aws.landings.pr_release(PR_2026))
    measure = (PR_2026 / "pr.measure").read_bytes().replace(b"Hours worked", b"Hours worked (all persons)")
    key = aws.landings.bulk_sync("pr", {"pr.measure": measure}, moment=datetime(2026, 11, 22, tzinfo=UTC))

    outcome = stage(aws, key)

    # THEN bls_series is rebuilt from the mirror's current pr.series with the new measure text, nothing else moves
    series = {r["series_id"]: r for r in aws.staging("bls_series").to_pylist()}
    assert series["PRS30006032"]["measure_text"] == "Hours worked (all persons)"
    assert series["PRS30006032"]["_source"].startswith("landing/bls_bulk/pr/pr.series?versionId=")
    assert [t["table"] for t in outcome["tables"]] == ["bls_series"]
    assert outcome["table_counts"]["bls_series"]["rows_revised"] == sum(
        1 for r in series.values() if r["measure_code"] == "03"
    )
