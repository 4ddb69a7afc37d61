"""The local lake folder: saved all or nothing, recovered after a crash, and clear about a corrupt or unwritable
folder."""

from __future__ import annotations

import json
import subprocess

import pytest
from moto import mock_aws

from localrun import lakesync
from localrun.lakesync import LocalLakeError, commit_lake, recover_lake, restore_table, save_lake
from tests.aws_builders import clients, create_state_table
from tests.support.local_run import localrun_process

BUCKET = "lake"


@pytest.fixture
def aws():
    with mock_aws():
        s3, ddb = clients("s3", "dynamodb")
        s3.create_bucket(Bucket=BUCKET)
        create_state_table(ddb, "state")
        yield s3, ddb


def put(s3, key: str, body: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def files(lake_dir) -> dict[str, bytes]:
    return {p.relative_to(lake_dir).as_posix(): p.read_bytes() for p in lake_dir.rglob("*") if p.is_file()}


def saved(lake_dir, s3, ddb):
    return save_lake(lake_dir, s3, BUCKET, (ddb, "state", lake_dir / "_local" / "state-table.jsonl"))


class FailingS3:
    """S3 whose GetObject fails on the n-th call, as a disk or network error would in the middle of a save."""

    def __init__(self, s3, fail_at: int) -> None:
        self.s3, self.fail_at, self.calls = s3, fail_at, 0

    def get_paginator(self, name):
        return self.s3.get_paginator(name)

    def get_object(self, **kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            raise OSError(28, "No space left on device")
        return self.s3.get_object(**kwargs)


def test_a_save_that_fails_half_way_leaves_the_previous_lake_whole(aws, tmp_path):
    s3, ddb = aws
    put(s3, "staging/a.parquet", b"a1")
    put(s3, "staging/b.parquet", b"b1")
    ddb.put_item(TableName="state", Item={"pk": {"S": "DATASET#x"}, "sk": {"S": "STATE"}, "v": {"N": "1"}})
    saved(tmp_path, s3, ddb)
    before = files(tmp_path)

    # GIVEN a run that changed both objects and the state
    put(s3, "staging/a.parquet", b"a2")
    put(s3, "staging/b.parquet", b"b2")
    ddb.put_item(TableName="state", Item={"pk": {"S": "DATASET#x"}, "sk": {"S": "STATE"}, "v": {"N": "2"}})

    # WHEN the save fails after the first object
    with pytest.raises(LocalLakeError, match=f"cannot save the lake into {tmp_path}.*previous lake is unchanged"):
        save_lake(tmp_path, FailingS3(s3, 2), BUCKET, (ddb, "state", tmp_path / "_local" / "state-table.jsonl"))

    # THEN the folder is exactly the previous run's, with no temporary file left
    assert files(tmp_path) == before

    # AND the next save writes everything
    result, items = saved(tmp_path, s3, ddb)
    assert (result.written, items) == (2, 1)
    assert files(tmp_path)["staging/a.parquet"] == b"a2"


def test_a_crash_after_the_commit_point_is_rolled_forward_at_the_next_start(aws, tmp_path):
    s3, ddb = aws
    put(s3, "staging/a.parquet", b"a1")
    put(s3, "landing/old.json", b"old")
    saved(tmp_path, s3, ddb)
    put(s3, "staging/a.parquet", b"a2")
    s3.delete_object(Bucket=BUCKET, Key="landing/old.json")

    # GIVEN a save whose process dies right after the journal was written (its commit, never applied)
    commit_lake(tmp_path, s3, BUCKET, (ddb, "state", tmp_path / "_local" / "state-table.jsonl"))
    assert files(tmp_path)["staging/a.parquet"] == b"a1"  # nothing applied yet

    # WHEN the next run starts
    said = recover_lake(tmp_path)

    # THEN the committed save is finished: new bytes in place, the removed object's file gone, no journal left
    assert said == "finished the save the last run had committed but not applied"
    assert files(tmp_path)["staging/a.parquet"] == b"a2"
    assert "landing/old.json" not in files(tmp_path)
    assert not any(name.endswith(lakesync.TMP_SUFFIX) or name.endswith("save-journal.json") for name in files(tmp_path))


def test_temporary_files_of_a_save_that_never_committed_are_removed(tmp_path):
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "a.parquet").write_bytes(b"a1")
    (tmp_path / "staging" / f"a.parquet{lakesync.TMP_SUFFIX}").write_bytes(b"a2")
    assert recover_lake(tmp_path) == "removed 1 file(s) of a save that never committed"
    assert files(tmp_path) == {"staging/a.parquet": b"a1"}


def test_a_corrupt_state_file_is_named_with_the_fix(aws, tmp_path):
    _, ddb = aws
    state = tmp_path / "state-table.jsonl"
    good = json.dumps({"pk": {"S": "DATASET#x"}, "sk": {"S": "STATE"}})
    state.write_text(good + "\n" + good[:20] + "\n")
    with pytest.raises(LocalLakeError) as raised:
        restore_table(state, ddb, "state")
    message = str(raised.value)
    assert f"the local state file {state} is corrupt at line 2" in message
    assert "Fix: restore it from a backup, or delete it" in message


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return localrun_process(*args, timeout=120)


def test_make_run_names_a_corrupt_state_file_in_one_line_and_exits_2(tmp_path):
    state = tmp_path / "_local" / "state-table.jsonl"
    state.parent.mkdir(parents=True)
    state.write_text('{"pk": {"S": "DATASET#x"}, "sk": {"S": "ST\n')
    done = run_cli("--lake-dir", str(tmp_path), "--dataset", "population")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        line for line in done.stderr.strip().splitlines() if line.startswith("error: the local state file")
    ]
    assert str(state) in done.stderr


def test_make_run_names_an_unwritable_lake_folder_in_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = run_cli("--lake-dir", str(blocker / "lake"), "--dataset", "population")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"error: the lake folder {blocker / 'lake'} is not writable (Not a directory): choose another with --lake-dir"
    )
