"""The scheduler's use case with fakes of its ports: no AWS, a fixed clock and seed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from datalake.catalog import load_catalog
from datalake.contracts import RunStarted, Trigger
from scheduler.adapters import RunIdTaken
from scheduler.domain import new_run_id
from scheduler.service import BadScheduleRequest, Ports, Scheduler

NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


class FakePorts:
    def __init__(self, taken: set[str] = frozenset()) -> None:
        self.taken = set(taken)
        self.claims: list[tuple[str, str]] = []
        self.batches: list[list[str]] = []
        self.events: list = []

    def claim(self, run_id: str, seed: str, now: datetime) -> None:
        if run_id in self.taken:
            raise RunIdTaken(f"run_id {run_id} was already used by another invoke; omit run_id to get a fresh one")
        self.claims.append((run_id, seed))

    def send(self, batch) -> int:
        self.batches.append([f"{r.source.value}/{r.dataset}" for r in batch])
        return len(batch)

    def ports(self) -> Ports:
        return Ports(catalog=load_catalog, claim=self.claim, send=self.send, publish=self.events.append)


def scheduler(fakes: FakePorts) -> Scheduler:
    return Scheduler(fakes.ports(), window_years=3, clock=lambda: NOW, token=lambda: "seed-0001")


def test_a_manual_run_is_claimed_enqueued_in_batches_of_ten_and_announced():
    fakes = FakePorts()
    run = scheduler(fakes).schedule({"trigger": "manual", "sources": ["bls_api"]})

    api = [e.ref for e in load_catalog().entries if e.source.value == "bls_api"]
    assert run.run_id == new_run_id(NOW, "seed-0001") == fakes.claims[0][0]
    assert run.trigger is Trigger.MANUAL
    assert [len(b) for b in fakes.batches] == [10] * (len(api) // 10) + ([len(api) % 10] if len(api) % 10 else [])
    assert sum(fakes.batches, []) == run.datasets == api
    [started] = fakes.events
    assert isinstance(started, RunStarted)
    assert (started.run_id, started.datasets, started.counts) == (run.run_id, api, {"requests": len(api)})


def test_a_refused_claim_sends_and_announces_nothing():
    fakes = FakePorts(taken={"20261203T080000Z-0123abcd"})
    request = {"trigger": "manual", "datasets": ["LNS14000000"], "run_id": "20261203T080000Z-0123abcd"}
    with pytest.raises(BadScheduleRequest, match="run_id 20261203T080000Z-0123abcd was already used"):
        scheduler(fakes).schedule(request)
    assert fakes.batches == [] and fakes.events == []
