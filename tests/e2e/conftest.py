"""The fault matrix's machinery: scenarios played over full local runs, a few at a time, and the table it prints.

A scenario is a fault plan (``localrun.faults``) played over the whole local pipeline, each run in a fresh process
as ``make run`` runs it: the faulted run, then the recovery the scenario names (a DLQ redrive with
``--redrive``, and/or the next run once the source is fixed), then the comparison with a clean run of the same
scope. Scenarios are independent (each has its own lake folder), so the selected ones are played on a small
thread pool (``FAULT_MATRIX_WORKERS``, default 3) as soon as the first one is asked for; each test then checks
its own.

Any test of the session can add a row to the fault table with ``record_property("fault_matrix", {...})`` (the
delivery-fault tests do); ``tests/fault_table.py`` prints it at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from localrun.template import ROOT
from tests.support.audit import RunAudit, audit_run, dead_letters
from tests.support.lakes import mart_differences, staging_differences
from tests.support.local_run import reference_lake, reference_run_id, run_local, session_root

DLQ_ORDER = ("ExtractDLQ", "TransformDLQ", "ModelDLQ", "NotifyDLQ")


@dataclass(frozen=True)
class Scenario:
    """One row of the matrix.

    ``endings``: the expected ending of each catalog entry after the faulted run (``landed``, ``dlq``,
    ``deferred``); entries not named must have landed. ``manifests``: the expected ending of the landed manifests
    of an entry (``staged``, ``quarantined``); not named: ``staged``. ``faulted``: how many requests the fault
    must have answered. ``recovery``: ``redrive`` (every DLQ holding something) and/or ``next run``.
    ``permanent``: entries that fail for good in a clean run too (a catalog id the source does not have).
    """

    id: str
    fault: str
    target: str
    scope: tuple[str, ...]
    plan: dict[str, Any]
    endings: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, str] = field(default_factory=dict)
    faulted: int | None = None
    recovery: tuple[str, ...] = ()
    reason: str | None = None  # a regular expression the DLQ reason must match
    permanent: tuple[str, ...] = ()
    # Snapshot integrity: ``prior`` starts from a clean run's lake (a previous good snapshot exists); ``kept``
    # asserts that after the faulted run staging still equals it (nothing replaced by an unproven snapshot);
    # ``notice`` is a regular expression the faulted run's notifications must show (the cause, named);
    # ``replay`` names a variant of the bundled replay (a new release) for the faulted run, its recovery and the
    # clean reference; ``damage`` lists lake files (globs) deleted before the faulted run.
    prior: bool = False
    kept: bool = False
    notice: str | None = None
    replay: str | None = None
    damage: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.id


@dataclass
class Played:
    scenario: Scenario
    run_id: str
    before: RunAudit
    after: RunAudit
    reference: RunAudit
    faults: dict[str, Any]
    stages: dict[str, Any]
    steps: list[str]
    mart_diffs: list[str]
    staging_diffs: list[str]
    dead_after: list[tuple[str, str]]
    seconds: float
    output: str = ""  # the faulted run's console (its notifications and summary)
    kept_diffs: list[str] = field(default_factory=list)  # staging after the faulted run vs. the prior snapshot

    def row(self) -> dict[str, str]:
        source = self.faults.get("source") or []
        faulted = sum(f["faulted"] for f in source)
        matched = sum(f["matched"] for f in source)
        receives = self.stages.get("ExtractorFunction", {}).get("received", 0)
        return {
            "fault": self.scenario.fault,
            "target": self.scenario.target,
            "scope": " + ".join(a for a in self.scenario.scope if not a.startswith("--")) or "full catalog",
            "attempts": f"{faulted} of {matched} requests; {receives} receives",
            "faulted run": self.before.outcome_line(),
            "recovery": ", ".join(self.steps) or "none needed",
            "after recovery": self.after.outcome_line(),
            "lost": str(len(self.before.lost) + len(self.after.lost)),
            "converged": "yes" if not (self.mart_diffs or self.staging_diffs) else "NO",
            "seconds": f"{self.seconds:.0f}",
        }


def replay_variant(name: str, workdir: Path) -> Path:
    """A variant of the bundled replay, built once per session folder.

    ``pr-series-retired``: the 2026-08 ``pr`` release as if BLS had discontinued one series (PRS30006011): its lines
    leave every data file and ``pr.series``, as they do when BLS retires a series.
    """
    target = workdir / f"replay-{name}"
    if target.exists():
        return target
    if name != "pr-series-retired":
        raise ValueError(f"no replay variant {name!r}")
    building = workdir / f"replay-{name}.building"
    shutil.rmtree(building, ignore_errors=True)
    shutil.copytree(ROOT / "data" / "replay", building)
    survey = building / "bls_bulk" / "pr"
    for path in survey.iterdir():
        if path.name.startswith("pr.data.") or path.name == "pr.series":
            lines = path.read_bytes().splitlines(keepends=True)
            path.write_bytes(b"".join(line for line in lines if not line.startswith(RETIRED_SERIES.encode())))
    building.rename(target)
    return target


RETIRED_SERIES = "PRS30006011"


def play(scenario: Scenario, workdir: Path, references: Path) -> Played:
    """The faulted run, the recovery, and the comparison with a clean run of the same scope."""
    started = time.monotonic()
    lake = workdir / scenario.id
    new_release = ("--replay-dir", str(replay_variant(scenario.replay, workdir))) if scenario.replay else ()
    prior = None
    if scenario.prior:  # the previous good snapshot: a copy of the clean run of the same scope
        prior = reference_lake(references, *scenario.scope)
        shutil.copytree(prior, lake)
    for pattern in scenario.damage:
        for path in lake.glob(pattern):
            path.unlink()
    scope = (*scenario.scope, *new_release)
    faulted = run_local(lake, *scope, plan={"name": scenario.id, **scenario.plan})
    before = audit_run(lake, faulted.run_id)
    kept_diffs = staging_differences(lake, prior) if scenario.kept and prior is not None else []
    steps = []
    if "redrive" in scenario.recovery:
        for dlq in DLQ_ORDER:
            if before.dead_letters.get(dlq):
                run_local(lake, "--redrive", dlq)
                steps.append(f"redrive {dlq}")
    if "next run" in scenario.recovery:
        run_local(lake, *scope)
        steps.append("next run")
    after = audit_run(lake, faulted.run_id)
    reference = reference_lake(references, *scope)
    return Played(
        scenario=scenario,
        run_id=faulted.run_id,
        before=before,
        after=after,
        reference=audit_run(reference, reference_run_id(reference)),
        faults=faulted.record.get("faults") or {},
        stages=faulted.record["stages"],
        steps=steps,
        mart_diffs=mart_differences(lake, reference),
        staging_diffs=staging_differences(lake, reference),
        dead_after=dead_letters(lake),
        seconds=time.monotonic() - started,
        output=faulted.output,
        kept_diffs=kept_diffs,
    )


class ScenarioPool:
    """Plays the session's selected scenarios on a few threads (each run is its own process)."""

    def __init__(self, workdir: Path, references: Path, scenarios: list[Scenario], workers: int) -> None:
        self.workdir = workdir
        self.references = references
        self.scenarios = {s.id: s for s in scenarios}
        self.workers = workers
        self._futures: dict[str, Future[Played]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def result(self, scenario: Scenario) -> Played:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fault-matrix")
                for queued in self.scenarios.values():
                    self._futures[queued.id] = self._executor.submit(play, queued, self.workdir, self.references)
            if scenario.id not in self._futures:
                self._futures[scenario.id] = self._executor.submit(play, scenario, self.workdir, self.references)
        return self._futures[scenario.id].result()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def scenario_pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScenarioPool]:
    """The pool, knowing every scenario the session selected (after -m and -k)."""
    selected = []
    for item in request.session.items:
        scenario = getattr(item, "callspec", None) and item.callspec.params.get("scenario")
        if isinstance(scenario, Scenario) and scenario not in selected:
            selected.append(scenario)
    pool = ScenarioPool(
        tmp_path_factory.mktemp("fault-matrix"),
        session_root(tmp_path_factory) / "fault-references",  # shared with the delivery-fault tests
        selected,
        int(os.environ.get("FAULT_MATRIX_WORKERS", "3")),
    )
    yield pool
    pool.close()
