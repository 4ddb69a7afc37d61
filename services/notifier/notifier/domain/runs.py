"""The run ledger, reduced: one stored event per business key becomes a run's report. A run settles when every
expected dataset reached a terminal outcome and the marts were built after the last staging (or nothing was
staged).

Pure: no boto3, no environment, no Powertools.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from datalake.contracts import (
    DatasetExtracted,
    DatasetHeld,
    DatasetQuarantined,
    DatasetStaged,
    DatasetUnchanged,
    MartsBuilt,
    PipelineEvent,
    QuarantinedRows,
    RunStarted,
    StageFailed,
)
from notifier.domain.notice import dataset_ref

DATASET_STAGES = {"extractor", "transformer"}  # a stage.failed from these ends a dataset's part in the run

Outcome = Literal["unchanged", "staged", "quarantined", "held", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("unchanged", "staged", "quarantined", "held", "failed")


def ledger_key(event: PipelineEvent) -> str:
    """The ledger's key for an event: a repeat of the same fact (a duplicate delivery, or the same event published
    twice) lands on the same key, so it is counted once."""
    ref = dataset_ref(event) or "-"
    if isinstance(event, RunStarted):
        return "run.started"
    if isinstance(event, StageFailed):
        return f"stage.failed#{event.stage}#{ref}#{event.check or '-'}"
    if isinstance(event, MartsBuilt):
        built = sorted(f"{m.name}|{m.key}|{m.rows}" for m in event.marts) + sorted(f"skip|{s}" for s in event.skipped)
        built += sorted(f"quarantine|{q.quarantine_key}|{q.rows_quarantined}" for q in event.quarantined)
        return "marts.built#" + hashlib.sha256("\n".join(built).encode()).hexdigest()[:16]
    return f"{event.event_type.value}#{ref}"


def terminal_outcome(event: PipelineEvent) -> Outcome | None:
    if isinstance(event, DatasetUnchanged):
        return "unchanged"
    if isinstance(event, DatasetStaged):
        return "staged"
    if isinstance(event, DatasetQuarantined):
        return "quarantined"
    if isinstance(event, DatasetHeld):
        return "held"
    if isinstance(event, StageFailed) and event.stage in DATASET_STAGES and dataset_ref(event):
        return "failed"
    return None


def is_model_outcome(event: PipelineEvent) -> bool:
    return isinstance(event, MartsBuilt) or (isinstance(event, StageFailed) and event.stage == "modeler")


@dataclass(frozen=True)
class LedgerHint:
    """What the run's SUMMARY item says: enough to know whether reading the whole ledger is worth it."""

    expected: frozenset[str] | None
    terminal: frozenset[str]
    last_staged_at: str | None
    last_modeled_at: str | None

    @property
    def may_be_settled(self) -> bool:
        if not self.expected or not self.expected <= self.terminal:
            return False
        return self.last_staged_at is None or (
            self.last_modeled_at is not None and self.last_modeled_at >= self.last_staged_at
        )


@dataclass(frozen=True)
class TableRows:
    written: int = 0
    quarantined: int = 0
    retired: int = 0


@dataclass
class RunReport:
    run_id: str
    trigger: str | None
    started_at: datetime | None
    expected: list[str] | None
    outcomes: dict[str, tuple[Outcome, PipelineEvent]]
    extracted: set[str]
    tables: dict[str, TableRows]
    marts: dict[str, int]
    skipped_marts: list[str]
    unbuilt_marts: dict[str, str]  # of the skipped ones, those that could not be built: mart -> why
    held: dict[str, DatasetHeld]  # snapshots held in the run (the dataset's outcome may be staged for other files)
    restored: dict[str, list[str]]  # what the run found missing and landed again (self-healing)
    model_failures: list[StageFailed]
    # source rows a mart could not use, by quarantine key (the dataset was staged and the rest modelled)
    row_quarantines: dict[str, QuarantinedRows]
    run_failures: list[StageFailed]
    stage_seconds: dict[str, float]
    first_at: datetime | None
    last_at: datetime | None
    staged_any: bool
    modeled_after_staging: bool
    in_flight: set[str] = field(default_factory=set)  # landed, but not staged or quarantined yet

    @property
    def pending(self) -> list[str]:
        return sorted(set(self.expected or []) - set(self.outcomes))

    @property
    def settled(self) -> bool:
        """Every expected dataset has an outcome, and the marts were built after the last staging (or no dataset
        was staged, so nothing needed building)."""
        if self.expected is None or self.pending:
            return False
        return not self.staged_any or self.modeled_after_staging

    def outcome_count(self, outcome: Outcome) -> int:
        return sum(1 for o, _ in self.outcomes.values() if o == outcome)

    @property
    def digest(self) -> str:
        """What the summary says, without times: a repeat of the same state gives the same digest."""
        state = {
            "outcomes": {ref: o for ref, (o, _) in sorted(self.outcomes.items())},
            "pending": self.pending,
            "extracted": sorted(self.extracted),
            "tables": {t: [r.written, r.quarantined] for t, r in sorted(self.tables.items())},
            "marts": dict(sorted(self.marts.items())),
            "skipped": sorted(self.skipped_marts),
            "held": sorted(self.held),
            "restored": sorted(self.restored),
            "model_failures": sorted(f"{f.check}|{f.reason}" for f in self.model_failures),
            "row_quarantines": sorted(f"{k}|{q.rows_quarantined}" for k, q in self.row_quarantines.items()),
            "modeled": self.modeled_after_staging,
        }
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:24]


@dataclass
class _Tally:
    """Accumulates a run's events in time order."""

    outcomes: dict[str, tuple[Outcome, PipelineEvent]] = field(default_factory=dict)
    extracted: set[str] = field(default_factory=set)
    tables: dict[str, TableRows] = field(default_factory=dict)
    marts: dict[str, int] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)
    skipped_reasons: dict[str, str] = field(default_factory=dict)
    held: dict[str, DatasetHeld] = field(default_factory=dict)
    restored: dict[str, list[str]] = field(default_factory=dict)
    model_failures: list[StageFailed] = field(default_factory=list)
    run_failures: list[StageFailed] = field(default_factory=list)
    row_quarantines: dict[str, QuarantinedRows] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)
    # first/last time each stage was heard of: extract end, transform start and end, last staging, model end
    marks: dict[str, datetime] = field(default_factory=dict)

    def add(self, event: PipelineEvent) -> None:
        ref, outcome = dataset_ref(event), terminal_outcome(event)
        self._warnings_of(event, ref)
        if ref and outcome:
            self.outcomes[ref] = (outcome, event)  # in time order: the latest outcome wins
            self.in_flight.discard(ref)
        elif ref and isinstance(event, DatasetExtracted):
            self.in_flight.add(ref)  # landed again after its outcome (a redrive): the outcome is not final yet
        stage = _stage_of(event)
        if stage == "extract":
            self.marks["extract_end"] = event.occurred_at
        elif stage == "transform":
            self.marks["transform_end"] = event.occurred_at
        elif stage == "model":
            self.marks["model_end"] = event.occurred_at
        if isinstance(event, DatasetExtracted) and ref:
            self.extracted.add(ref)
            self.marks.setdefault("transform_start", event.occurred_at)
        elif isinstance(event, DatasetStaged):
            self.marks["last_staged"] = event.occurred_at
            for t in event.tables:
                rows = self.tables.get(t.table, TableRows())
                self.tables[t.table] = TableRows(
                    rows.written + t.rows_written, rows.quarantined + t.rows_quarantined, rows.retired + t.rows_retired
                )
        elif isinstance(event, MartsBuilt):
            self.marts.update({m.name: m.rows for m in event.marts})
            # A mart built earlier in the run is not "skipped" because a later rebuild found it unchanged (a
            # duplicate dataset.staged rebuilds and publishes nothing): that must not change the summary.
            self.skipped.difference_update(self.marts)
            self.skipped.update(set(event.skipped) - set(self.marts))
            self.skipped_reasons.update(event.skipped_reasons)
            self.row_quarantines.update({q.quarantine_key: q for q in event.quarantined})
        elif isinstance(event, StageFailed) and event.stage == "modeler":
            self.model_failures.append(event)
        elif isinstance(event, StageFailed) and outcome is None:
            self.run_failures.append(event)

    def _warnings_of(self, event: PipelineEvent, ref: str | None) -> None:
        """Holds and self-healing are told in the summary even when the dataset's outcome is staged."""
        if isinstance(event, DatasetHeld) and ref:
            self.held[ref] = event
        elif isinstance(event, DatasetExtracted) and ref and event.restored:
            self.restored[ref] = event.restored

    def stage_seconds(self, t0: datetime | None, last_at: datetime | None) -> dict[str, float]:
        m = self.marks
        spans = {
            "extract": (t0, m.get("extract_end")),
            "transform": (m.get("transform_start"), m.get("transform_end")),
            "model": (m.get("last_staged"), m.get("model_end")),
            "total": (t0, last_at),
        }
        return {
            stage: (end - start).total_seconds()
            for stage, (start, end) in spans.items()
            if start is not None and end is not None and end >= start
        }


def _stage_of(event: PipelineEvent) -> str | None:
    """The stage whose work an event ends (for the stage times)."""
    if isinstance(event, StageFailed):
        return {"extractor": "extract", "transformer": "transform", "modeler": "model"}.get(event.stage)
    if isinstance(event, DatasetExtracted | DatasetUnchanged):
        return "extract"
    if isinstance(event, DatasetStaged | DatasetQuarantined):
        return "transform"
    if isinstance(event, MartsBuilt):
        return "model"
    return None


def reduce_run(run_id: str, events: Sequence[PipelineEvent]) -> RunReport:
    """Reduce a run's ledger (its stored events, any order) to a report.

    Parameters
    ----------
    run_id: the run.
    events: the run's ledger entries (one per business key; see ``ledger_key``).

    Returns
    -------
    The report: each dataset's latest terminal outcome, rows by table, marts, and stage times.
    """
    ordered = sorted((e for e in events if e.run_id == run_id), key=lambda e: e.occurred_at)
    started = next((e for e in ordered if isinstance(e, RunStarted)), None)
    tally = _Tally()
    for event in ordered:
        tally.add(event)
    t0 = started.occurred_at if started else (ordered[0].occurred_at if ordered else None)
    last_at = ordered[-1].occurred_at if ordered else None
    last_staged, model_end = tally.marks.get("last_staged"), tally.marks.get("model_end")
    return RunReport(
        run_id=run_id,
        trigger=started.trigger.value if started else None,
        started_at=started.occurred_at if started else None,
        expected=sorted(set(started.datasets)) if started else None,
        outcomes={ref: o for ref, o in tally.outcomes.items() if ref not in tally.in_flight},
        extracted=tally.extracted,
        in_flight=tally.in_flight,
        tables=tally.tables,
        marts=tally.marts,
        skipped_marts=sorted(tally.skipped),
        unbuilt_marts={n: r for n, r in sorted(tally.skipped_reasons.items()) if n in tally.skipped},
        held=dict(sorted(tally.held.items())),
        restored=dict(sorted(tally.restored.items())),
        model_failures=tally.model_failures,
        run_failures=tally.run_failures,
        row_quarantines=dict(sorted(tally.row_quarantines.items())),
        stage_seconds=tally.stage_seconds(t0, last_at),
        first_at=t0,
        last_at=last_at,
        staged_any=last_staged is not None,
        modeled_after_staging=last_staged is not None and model_end is not None and model_end >= last_staged,
    )
