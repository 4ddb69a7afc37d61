"""The state items a staging writes, under the concurrency real DynamoDB has and moto does not model.

Four transformers run at once (the TransformQueue's MaximumConcurrency), and every staging of a source writes the
same ``SOURCE#{source}/FRESHNESS`` item. Real DynamoDB cancels one of two overlapping transactions on a common item
(``TransactionCanceledException``, reason ``TransactionConflict``; botocore does not retry it) and refuses a plain
write to an item a transaction is writing (``TransactionConflictException``). moto runs every request alone, so it
never does either. ``RealTransactions`` wraps moto's client and does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from datalake.contracts import Manifest, ManifestPart
from datalake.state import StateError, StateStore, utc_stamp
from transformer.state_recorder import StateRecorder

T0 = datetime(2026, 11, 21, 8, 5, tzinfo=UTC)


def _key(table: str, key: dict[str, Any]) -> tuple[str, str, str]:
    return table, key["pk"]["S"], key["sk"]["S"]


def _transaction_keys(items: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    keys = []
    for item in items:
        ((_, action),) = item.items()
        keys.append(_key(action["TableName"], action.get("Key") or {k: action["Item"][k] for k in ("pk", "sk")}))
    return keys


class RealTransactions:
    """moto's DynamoDB client, with DynamoDB's isolation of transactions: while a TransactWriteItems is in flight,
    another transaction on any of its items is cancelled and a plain write to one of them is refused.

    ``rival``: another invocation's writes, run once while this client's first write touching ``contended`` is
    in flight, as two Lambdas do when they stage two datasets of one source in the same instant.
    """

    def __init__(self, ddb: Any, contended: tuple[str, str, str], rival: Callable[[], None]) -> None:
        self._ddb = ddb
        self._contended = contended
        self._rival: Callable[[], None] | None = rival
        self._in_flight: set[tuple[str, str, str]] = set()
        self.conflicts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ddb, name)

    def _overlap(self, keys: list[tuple[str, str, str]]) -> None:
        """The rival's writes happen now, while ours are on their way."""
        if self._rival is not None and self._contended in keys:
            rival, self._rival = self._rival, None
            rival()

    def transact_write_items(self, TransactItems: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        keys = _transaction_keys(TransactItems)
        if self._in_flight & set(keys):
            self.conflicts += 1
            reasons = [{"Code": "TransactionConflict" if k in self._in_flight else "None"} for k in keys]
            raise ClientError(
                {
                    "Error": {
                        "Code": "TransactionCanceledException",
                        "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
                        f"[{', '.join(r['Code'] for r in reasons)}]",
                    },
                    "CancellationReasons": reasons,
                },
                "TransactWriteItems",
            )
        self._in_flight |= set(keys)
        try:
            self._overlap(keys)
            return self._ddb.transact_write_items(TransactItems=TransactItems, **kwargs)
        finally:
            self._in_flight -= set(keys)

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        key = _key(kwargs["TableName"], kwargs["Key"])
        if key in self._in_flight:
            self.conflicts += 1
            raise ClientError(
                {"Error": {"Code": "TransactionConflictException", "Message": "Transaction is ongoing for the item"}},
                "UpdateItem",
            )
        self._overlap([key])  # a plain write is applied whole, before or after the rival's
        return self._ddb.update_item(**kwargs)


def manifest(dataset: str, run_id: str = "20261121T080000Z-0a1b2c3d", source: str = "bls_api") -> Manifest:
    return Manifest(
        run_id=run_id,
        source=source,
        dataset=dataset,
        created_at=T0,
        fetched_at=T0,
        source_url="https://api.bls.gov/publicAPI/v2/timeseries/data/",
        content_sha256="a" * 64,
        parts=[
            ManifestPart(
                key=f"landing/bls_api/{dataset}/ingest_date=2026-11-21/x.json", sha256="b" * 64, bytes=10, records=1
            )
        ],
    )


def manifest_key(dataset: str) -> str:
    return f"landing/bls_api/{dataset}/ingest_date=2026-11-21/20261121T080000Z-{dataset[-6:].lower()}.manifest.json"


def test_two_stagings_of_one_source_recorded_in_the_same_instant_both_succeed(aws):
    # GIVEN two transformers staging two series of bls_api, whose records reach DynamoDB in the same instant
    table = os.environ["STATE_TABLE"]
    rival_error: list[Exception] = []

    def rival_records() -> None:
        try:
            rival.staged(manifest("CES0000000001"), manifest_key("CES0000000001"), {"rows_written": 7}, T0)
        except Exception as exc:  # noqa: BLE001 - the rival invocation's failure, asserted below
            rival_error.append(exc)

    racing = RealTransactions(aws.ddb, (table, "SOURCE#bls_api", "FRESHNESS"), rival_records)
    ours, rival = StateRecorder(StateStore(table, racing)), StateRecorder(StateStore(table, racing))

    # WHEN both record their staging
    ours.staged(manifest("LNS14000000"), manifest_key("LNS14000000"), {"rows_written": 59}, T0 + timedelta(seconds=1))

    # THEN neither was refused: both datasets' staging is recorded, and the source's freshness is the newer one
    assert rival_error == []
    assert racing.conflicts == 0
    assert aws.state_item("DATASET#bls_api#LNS14000000", "STATE")["staged_rows"] == 59
    assert aws.state_item("DATASET#bls_api#CES0000000001", "STATE")["staged_rows"] == 7
    freshness = aws.state_item("SOURCE#bls_api", "FRESHNESS")
    assert freshness["last_staged_at"] == utc_stamp(T0 + timedelta(seconds=1))
    assert freshness["last_staged_dataset"] == "LNS14000000"


def test_a_staging_recorded_late_never_moves_the_freshness_back(aws):
    # GIVEN a source whose freshness was advanced by a staging at T0 + 5 s
    recorder = StateRecorder(StateStore(os.environ["STATE_TABLE"], aws.ddb))
    recorder.staged(manifest("LNS14000000"), manifest_key("LNS14000000"), {}, T0 + timedelta(seconds=5))

    # WHEN a concurrent staging, stamped earlier, is recorded after it
    recorder.staged(manifest("CES0000000001"), manifest_key("CES0000000001"), {"rows_written": 7}, T0)

    # THEN its dataset's staging is recorded, and the source keeps its newer freshness
    assert aws.state_item("DATASET#bls_api#CES0000000001", "STATE")["staged_at"] == utc_stamp(T0)
    freshness = aws.state_item("SOURCE#bls_api", "FRESHNESS")
    assert freshness["last_staged_at"] == utc_stamp(T0 + timedelta(seconds=5))
    assert freshness["last_staged_dataset"] == "LNS14000000"


class ReadThenRival(StateStore):
    """The state table, where another staging of the same dataset records itself right after our read of the
    dataset's STATE, as two transformers staging two groups of one bulk survey in overlapping runs would."""

    def __init__(self, table: str, ddb: Any, rival: Callable[[], None], times: int = 1) -> None:
        super().__init__(table, ddb)
        self._rival, self._times = rival, times

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = super().get(pk, sk)
        if self._times and sk == "STATE":
            self._times -= 1
            self._rival()
        return item


def test_two_stagings_of_one_dataset_keep_both_their_groups(aws):
    # GIVEN a bulk survey whose staging holds the Current file's group
    table = os.environ["STATE_TABLE"]
    plain = StateRecorder(StateStore(table, aws.ddb))
    plain.staged(
        manifest("pr", source="bls_bulk"),
        manifest_key("pr"),
        {},
        T0,
        {"pr.data.0.Current": "staging/x/current-1.parquet"},
    )

    # WHEN two stagings of it record at once: ours (AllData) reads the state, then the rival (a new Current) records
    def rival_records() -> None:
        plain.staged(
            manifest("pr", source="bls_bulk"),
            manifest_key("pr"),
            {},
            T0,
            {"pr.data.0.Current": "staging/x/current-2.parquet"},
        )

    ours = StateRecorder(ReadThenRival(table, aws.ddb, rival_records))
    ours.staged(
        manifest("pr", source="bls_bulk"),
        manifest_key("pr"),
        {},
        T0 + timedelta(seconds=1),
        {"pr.data.1.AllData": "staging/x/all-1.parquet"},
    )

    # THEN the staging holds both: the rival's new Current file (not the one it replaced) and our AllData file
    assert aws.state_item("DATASET#bls_bulk#pr", "STATE")["staged_groups"] == {
        "pr.data.0.Current": "staging/x/current-2.parquet",
        "pr.data.1.AllData": "staging/x/all-1.parquet",
    }


def test_groups_that_change_under_every_merge_fail_the_record_loudly(aws):
    table = os.environ["STATE_TABLE"]
    plain = StateRecorder(StateStore(table, aws.ddb))
    files = iter(range(100))

    def rival_records() -> None:
        plain.staged(manifest("pr", source="bls_bulk"), manifest_key("pr"), {}, T0, {"g": f"f-{next(files)}"})

    ours = StateRecorder(ReadThenRival(table, aws.ddb, rival_records, times=100))
    with pytest.raises(StateError, match="changed under each of 5 attempts to merge them"):
        ours.staged(manifest("pr", source="bls_bulk"), manifest_key("pr"), {}, T0, {"mine": "staging/x/mine.parquet"})

    assert "mine" not in aws.state_item("DATASET#bls_bulk#pr", "STATE")["staged_groups"]
