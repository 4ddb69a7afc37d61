"""The BLS bulk mirror over two real `pr` releases: 2025-02 (test fixture) then 2026-08 (the bundled replay).

Both folders come from git with identical file mtimes, so the replay's Last-Modified dates say nothing: the
mirror must decide by content. pr.series even keeps its size (15,657 bytes) while its content changes.
"""

from __future__ import annotations

import hashlib

import pytest

from datalake.contracts import Manifest
from localrun.replay import ReplayResponse, ReplayServer
from tests.unit.extractor.support import PR_2025_02, REPLAY, bound_handler, failed_ids, request, sqs_event

MIRROR = "landing/bls_bulk/pr/"


def release(folder) -> dict[str, str]:
    """name -> sha256 of a release folder, computed here, independently of the extractor."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (folder / "bls_bulk" / "pr").iterdir()}


def mirrored_files(aws) -> dict[str, str]:
    """name -> sha256 of what the mirror holds now."""
    files = {}
    for key in aws.keys(MIRROR):
        name = key[len(MIRROR) :]
        if "/" not in name:
            files[name] = hashlib.sha256(aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read()).hexdigest()
    return files


def writes(aws) -> dict[str, int]:
    """name -> number of versions written (delete markers not counted) of each mirrored key."""
    counts: dict[str, int] = {}
    response = aws.s3.list_object_versions(Bucket=aws.bucket, Prefix=MIRROR)
    for version in response.get("Versions", []):
        name = version["Key"][len(MIRROR) :]
        if "/" not in name:
            counts[name] = counts.get(name, 0) + 1
    return counts


def delete_markers(aws) -> list[str]:
    response = aws.s3.list_object_versions(Bucket=aws.bucket, Prefix=MIRROR)
    return sorted(m["Key"][len(MIRROR) :] for m in response.get("DeleteMarkers", []))


def manifests(aws) -> list[Manifest]:
    keys = [k for k in aws.keys(MIRROR) if k.endswith(".manifest.json")]
    return [Manifest.model_validate_json(aws.s3.get_object(Bucket=aws.bucket, Key=k)["Body"].read()) for k in keys]


def sync(aws, replay: ReplayServer, run_id: str, lambda_context) -> dict:
    """One run's sync of the pr directory, from ``replay``, by a freshly composed extractor."""
    with bound_handler(aws, replay) as handler:
        return handler.lambda_handler(sqs_event([request("bls_bulk", "pr", run_id=run_id)]), lambda_context)


@pytest.fixture
def releases():
    with ReplayServer(PR_2025_02) as old, ReplayServer(REPLAY) as new:
        yield old, new


def test_two_real_releases_then_the_same_again(aws, releases, lambda_context):
    old, new = releases
    old_files, new_files = release(PR_2025_02), release(REPLAY)

    # GIVEN the mirror of the 2025-02 release
    assert sync(aws, old, "20250215T080000Z-00000001", lambda_context) == {"batchItemFailures": []}
    assert mirrored_files(aws) == old_files
    assert writes(aws) == dict.fromkeys(old_files, 1)
    aws.events()

    # WHEN the 2026-08 release is synced
    assert sync(aws, new, "20260807T080000Z-00000002", lambda_context) == {"batchItemFailures": []}

    # THEN the mirror equals the new release ...
    assert mirrored_files(aws) == new_files
    # ... and exactly the changed files were written again, the removed ones deleted, nothing else touched
    changed = sorted(n for n in new_files if n in old_files and new_files[n] != old_files[n])
    removed = sorted(set(old_files) - set(new_files))
    assert changed == ["pr.data.0.Current", "pr.data.1.AllData", "pr.series"]
    assert removed == ["pr.contacts", "pr.txt"]
    assert {n for n, count in writes(aws).items() if count == 2} == set(changed)
    assert delete_markers(aws) == removed
    # AND the sync's manifest lists what changed, each written file pinned to its version
    second = next(m for m in manifests(aws) if m.run_id == "20260807T080000Z-00000002")
    assert sorted((c.name, c.action) for c in second.changes) == sorted(
        [(n, "changed") for n in changed] + [(n, "deleted") for n in removed]
    )
    assert sorted(p.name for p in second.parts) == changed
    versions = {v["VersionId"] for v in aws.versions(MIRROR)}
    assert all(p.version_id in versions and p.sha256 == new_files[p.name] for p in second.parts)
    assert [e["event_type"] for e in aws.events()] == ["dataset.extracted"]

    # WHEN the same release is synced once more
    before = aws.versions("landing/")
    assert sync(aws, new, "20260808T080000Z-00000003", lambda_context) == {"batchItemFailures": []}

    # THEN nothing at all is written: no file, no delete marker, no manifest
    assert aws.versions("landing/") == before
    [unchanged] = aws.events()
    assert unchanged["event_type"] == "dataset.unchanged"
    # (each sync downloads every listed file; the removed ones were each asked for once, to prove them gone: 404)
    assert new.counts["bls_bulk_listing"] == 2
    assert new.counts["bls_bulk_file"] == 2 * len(new_files) + len(removed)


def test_a_failed_download_writes_and_deletes_nothing(aws, releases, lambda_context):
    old, new = releases
    sync(aws, old, "20250215T080000Z-00000001", lambda_context)
    before = aws.versions("landing/")

    # GIVEN BLS failing on one file of the new release, beyond the HTTP retries
    def broken_file(req, proceed):
        if req.path.endswith("/pr.series"):
            return ReplayResponse(status=503, body=b"Service Unavailable", content_type="text/plain")
        return proceed()

    new.add_hook(broken_file)

    # WHEN the sync runs
    response = sync(aws, new, "20260807T080000Z-00000002", lambda_context)

    # THEN the record fails (it returns to the queue) and the mirror is untouched: no write, no delete
    assert failed_ids(response) == {"m-0"}
    assert aws.versions("landing/") == before
    assert mirrored_files(aws) == release(PR_2025_02)

    # AND once BLS answers again, the redelivered request completes the sync
    new.clear_hooks()
    assert sync(aws, new, "20260807T080000Z-00000002", lambda_context) == {"batchItemFailures": []}
    assert mirrored_files(aws) == release(REPLAY)


@pytest.mark.parametrize(
    "answer",
    [
        ReplayResponse(status=200, body=b"<html><body>Temporarily down for maintenance</body></html>"),
        ReplayResponse(status=500, body=b"Internal Server Error"),
    ],
)
def test_a_broken_listing_deletes_nothing(aws, releases, lambda_context, answer):
    old, new = releases
    sync(aws, old, "20250215T080000Z-00000001", lambda_context)
    before = aws.versions("landing/")
    new.add_hook(lambda req, proceed: answer if req.endpoint == "bls_bulk_listing" else proceed())

    response = sync(aws, new, "20260807T080000Z-00000002", lambda_context)

    assert failed_ids(response) == {"m-0"}
    assert aws.versions("landing/") == before
    assert new.counts["bls_bulk_file"] == 0


def test_bls_refuses_without_a_contact_in_the_user_agent(releases):
    import requests

    _, new = releases
    url = new.environment()["BLS_BULK_URL"] + "pr/"
    assert requests.get(url, headers={"User-Agent": "python-requests/2"}, timeout=5).status_code == 403
    assert requests.get(url, headers={"User-Agent": "odp (+ops@example.org)"}, timeout=5).status_code == 200


def test_the_mirror_sends_the_contact_email(aws, releases, lambda_context):
    old, _ = releases
    sync(aws, old, "20250215T080000Z-00000001", lambda_context)
    agents = {r.headers.get("user-agent") for r in old.log}
    assert agents == {"open-data-pipeline/0.1 (+tests@example.org)"}
