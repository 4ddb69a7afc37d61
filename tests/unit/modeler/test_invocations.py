"""The modeler's invocation with fake ports (no AWS): the lease it asks for, a held lease, a failed rebuild."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest

from datalake.lease import LeaseBusy
from modeler.invocations import LOCK_WAIT_SECONDS, REBUILD_LEASE, Ports, model_batch, staged_event
from tests.conftest import load_event


class HeldLease:
    """Another rebuild holds the lease: every hold is refused."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    @contextmanager
    def hold(self, resource, lease_seconds=None):
        self.asked.append((resource, lease_seconds))
        raise LeaseBusy(f"{resource} is locked by another invocation; retry later")
        yield


class Refusing:
    """A port that must not be used (the rebuild never started), or fails as S3 would."""

    def __getattr__(self, name):
        raise AssertionError(f"{name} used although the rebuild never started")


class BrokenLake:
    def staging_files(self):
        raise RuntimeError("simulated S3 outage")


class FreeLease:
    @contextmanager
    def hold(self, resource, lease_seconds=None):
        yield


class Events:
    def __init__(self) -> None:
        self.published = []

    def publish(self, event):
        self.published.append(event)


def batch():
    records = load_event("modeler_staged_batch.json")["Records"]
    from datalake.records import SnsEnvelopeRecord

    return records, [staged_event(SnsEnvelopeRecord.model_validate(r)) for r in records]


def test_a_held_lease_sends_the_records_back_delayed_and_builds_nothing():
    records, staged = batch()
    lease, sent = HeldLease(), []
    ports = Ports(
        lake=Refusing(),
        state=Refusing(),
        events=Refusing(),
        lease=lease,
        requeue=lambda rs, delay: sent.append((rs, delay)) or len(rs),
    )

    assert model_batch(ports, staged, records, remaining_ms=570_000) is None

    # the one rebuild lease, for the invocation's remaining time and a margin
    assert lease.asked == [(REBUILD_LEASE, 600)]
    assert sent == [(records, LOCK_WAIT_SECONDS)]


def test_a_failed_rebuild_announces_stage_failed_and_raises():
    records, staged = batch()
    events = Events()
    ports = Ports(lake=BrokenLake(), state=Refusing(), events=events, lease=FreeLease(), requeue=Refusing())

    with pytest.raises(RuntimeError, match="simulated S3 outage"):
        model_batch(ports, staged, records, remaining_ms=10_000)

    [failed] = events.published
    assert failed.stage == "modeler" and failed.error_type == "RuntimeError"
    assert failed.run_id == max(json.loads(json.loads(r["body"])["Message"])["run_id"] for r in records)
    assert "simulated S3 outage" in failed.reason
