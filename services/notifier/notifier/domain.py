"""Notifier domain: what to tell people, and when a run has settled.

Pure logic: no boto3, no environment, no Powertools. Pipeline events and CloudWatch alarm notifications come in;
short, specific notices (what failed, which dataset, why, what to do, links) and run reports come out.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
from notifier.links import DLQ_OF_STAGE, FUNCTIONS, QUEUES, RUNBOOK, ConsoleLinks

SUBJECT_LIMIT = 99  # SNS: ASCII, no line breaks, fewer than 100 characters
DATASET_STAGES = {"extractor", "transformer"}  # a stage.failed from these ends a dataset's part in the run


class Kind(StrEnum):
    FAILURE = "failure"
    QUARANTINE = "quarantine"
    HELD = "held"
    MARTS = "marts"
    ALARM = "alarm"
    SUMMARY = "summary"
    FORWARDED = "forwarded"


@dataclass(frozen=True)
class Notice:
    """One message for people. ``same_as`` is what makes two notices repeats of each other."""

    kind: Kind
    subject: str
    body: str
    same_as: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.kind.value}\n{self.same_as}".encode()).hexdigest()[:32]

    def with_note(self, note: str) -> Notice:
        return Notice(self.kind, self.subject, f"{self.body.rstrip()}\n\n{note}\n", self.same_as)


def ascii_subject(text: str) -> str:
    """An SNS-safe subject: ASCII, one line, fewer than 100 characters."""
    flat = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    flat = re.sub(r"\s+", " ", flat).strip()
    return flat if len(flat) <= SUBJECT_LIMIT else flat[: SUBJECT_LIMIT - 3].rstrip() + "..."


def normalise_reason(reason: str) -> str:
    """The part of a reason that identifies a failure: numbers, times and ids that vary between repeats go."""
    text = reason.lower()
    text = re.sub(r"[0-9a-f]{8,}", "#", text)
    text = re.sub(r"\d+(\.\d+)?", "#", text)
    return re.sub(r"\s+", " ", text).strip()[:300]


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _rows(n: int) -> str:
    return "row" if n == 1 else "rows"


def dataset_ref(event: PipelineEvent) -> str | None:
    if event.source is None or event.dataset is None:
        return None
    return f"{event.source.value}/{event.dataset}"


def _links_block(lines: Iterable[tuple[str, str | None]]) -> str:
    shown = [f"- {label}: {url}" for label, url in lines if url]
    return "Links:\n" + "\n".join(shown) if shown else ""


def _compose(*parts: str) -> str:
    return "\n\n".join(p.strip("\n") for p in parts if p and p.strip()) + "\n"


# --------------------------------------------------------------------------------------------------------------
# Failures, quarantines and out-of-run mart builds
# --------------------------------------------------------------------------------------------------------------

_WHAT_TO_DO = {
    "scheduler": (
        "No run started. Check the catalog (shared/datalake/catalog.toml) and the scheduler logs; a scheduled "
        "event that failed twice is in SchedulerDLQ: fix the cause, then `make redrive QUEUE=SchedulerDLQ STACK=...`."
    ),
    "extractor": (
        "The ExtractRequest is in ExtractDLQ with its failure_reason. Fix the cause (a wrong id in the catalog, an "
        "exhausted quota, a source outage), then `make redrive QUEUE=ExtractDLQ STACK=...`. A dataset that no "
        "longer exists upstream should leave shared/datalake/catalog.toml."
    ),
    "transformer": (
        "The raw landing is untouched. After 5 attempts the S3 notification is in TransformDLQ: fix the cause, "
        "then `make redrive QUEUE=TransformDLQ STACK=...`; staging is idempotent, so reprocessing is safe."
    ),
    "modeler": (
        "The previous version of the mart stays published. Look at the failing check against the staged "
        "inputs; the next staged dataset rebuilds it, or `make redrive QUEUE=ModelDLQ STACK=...` after a fix."
    ),
    "notifier": "Notifications may be missing: see the notifier logs and NotifyDLQ.",
}


def stage_failed_notice(event: StageFailed, prefix: str, links: ConsoleLinks) -> Notice:
    ref = dataset_ref(event)
    target = ref or (f"check {event.check}" if event.check else "the run")
    what = f"The {event.stage} failed on {target}"
    if event.check:
        what += f" (quality check {event.check})"
    body = _compose(
        f"FAILED in the {event.stage}: {target}\nRun {event.run_id}, {when(event.occurred_at)}",
        f"What failed: {what}.\nWhy: {event.error_type}: {event.reason}",
        f"What to do: {_WHAT_TO_DO[event.stage]}\nRunbook: {RUNBOOK}#stage-failed",
        _links_block(
            [
                (f"{event.stage} logs", links.logs(event.stage)),
                (DLQ_OF_STAGE[event.stage], links.queue(DLQ_OF_STAGE[event.stage])),
                ("Logs Insights (this run)", links.logs_query(event.run_id)),
            ]
        ),
    )
    same = "|".join([event.stage, ref or "-", event.error_type, event.check or "-", normalise_reason(event.reason)])
    return Notice(Kind.FAILURE, ascii_subject(f"[{prefix}] FAILED {event.stage}: {target}"), body, same)


def _quarantined_what(event: DatasetQuarantined, ref: str) -> str:
    """What the transformer did, from its counts: a whole landing rejected, or some rows of it."""
    staged, rejected = event.counts.get("rows_written", 0), event.counts.get("rows_quarantined", 0)
    if not staged:
        return f"the transformer rejected the whole landing of {ref}; nothing from it was staged."
    return (
        f"the transformer staged {staged:,} {_rows(staged)} of {ref} and rejected "
        + (f"{rejected:,} {_rows(rejected)}" if rejected else "part of the landing")
        + " (quarantined)."
    )


def quarantined_notice(event: DatasetQuarantined, prefix: str, links: ConsoleLinks) -> Notice:
    ref = dataset_ref(event) or "an unknown dataset"
    body = _compose(
        f"QUARANTINED: {ref}\nRun {event.run_id}, {when(event.occurred_at)}",
        f"What failed: {_quarantined_what(event, ref)}\nWhy: {event.reason}",
        "What to do: read the reason and the rejected payload in quarantine; the raw landing is untouched. If the "
        "source changed its format, fix the transformer, then reprocess the landing (runbook). If the source "
        f"served an error page, the next run fetches it again.\nRunbook: {RUNBOOK}#dataset-quarantined",
        f"Quarantine: {links.s3_uri(event.quarantine_key)}\nLanding manifest: {links.s3_uri(event.manifest_key)}",
        _links_block(
            [
                ("quarantine", links.s3(event.quarantine_key)),
                ("transformer logs", links.logs("transformer")),
                ("Logs Insights (this run)", links.logs_query(event.run_id)),
            ]
        ),
    )
    same = f"{ref}|{normalise_reason(event.reason)}"
    return Notice(Kind.QUARANTINE, ascii_subject(f"[{prefix}] QUARANTINED {ref}"), body, same)


def held_notice(event: DatasetHeld, prefix: str, links: ConsoleLinks) -> Notice:
    """A snapshot that did not replace the previous one: what was wrong, what stays current, what to do."""
    ref = dataset_ref(event) or "an unknown dataset"
    if event.acceptable:
        todo = (
            "If upstream really dropped these rows, accept the drop: invoke the scheduler with "
            f'{{"trigger": "manual", "datasets": ["{event.dataset}"], "accept_drop": true}}. A drop that persists '
            "is accepted by rule after 3 consecutive runs. Otherwise nothing to do: the next run fetches it again."
        )
    else:
        todo = (
            "Nothing to accept: the source's own evidence says the snapshot is not whole. The next run fetches it "
            "again; if it stays incomplete, look at the held parts and at the source."
        )
    body = _compose(
        f"HELD: {ref}\nRun {event.run_id}, {when(event.occurred_at)}",
        f"What was wrong ({event.check}): {event.reason}",
        f"What was kept: {event.kept}. The new snapshot is landed raw, not staged: {links.s3_uri(event.held_key)}",
        f"What to do: {todo}\nRunbook: {RUNBOOK}#held-snapshots",
        _links_block(
            [
                ("held snapshot", links.s3(event.held_key)),
                ("extractor logs", links.logs("extractor")),
                ("Logs Insights (this run)", links.logs_query(event.run_id)),
            ]
        ),
    )
    same = f"{ref}|{event.check}|{normalise_reason(event.reason)}"
    return Notice(Kind.HELD, ascii_subject(f"[{prefix}] HELD {ref}: {event.check}"), body, same)


def marts_notice(event: MartsBuilt, prefix: str, links: ConsoleLinks) -> Notice:
    """A mart build outside a run the ledger knows (a redrive, a manual rebuild): told on its own."""
    lines = [f"  {m.name:<32} {m.rows:>12,} {_rows(m.rows)}  {links.s3_uri(m.key)}" for m in event.marts]
    skipped = [f"  {name}: {event.skipped_reasons.get(name, 'inputs not ready')}" for name in event.skipped]
    set_aside = [
        f"  {q.source.value}/{q.dataset}: {q.reason} ({links.s3_uri(q.quarantine_key)})" for q in event.quarantined
    ]
    body = _compose(
        f"MARTS BUILT: {len(event.marts)} mart(s)\nRun {event.run_id}, {when(event.occurred_at)}",
        "Built:\n" + ("\n".join(lines) if lines else "  (none)"),
        ("Not rebuilt (previous version kept):\n" + "\n".join(skipped)) if skipped else "",
        ("Rows quarantined (the rest of each dataset was modelled):\n" + "\n".join(set_aside)) if set_aside else "",
        _links_block([("dashboard", links.dashboard()), ("modeler logs", links.logs("modeler"))]),
    )
    same = event.run_id + "|" + ",".join(sorted(f"{m.name}={m.key}" for m in event.marts))
    subject = f"[{prefix}] MARTS BUILT: {', '.join(m.name for m in event.marts) or 'none'}"
    return Notice(Kind.MARTS, ascii_subject(subject), body, same)


# --------------------------------------------------------------------------------------------------------------
# CloudWatch alarms (the SNS message CloudWatch publishes on a state change) and other AlarmTopic messages
# --------------------------------------------------------------------------------------------------------------


class AlarmDimension(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)
    name: str
    value: str


class AlarmTrigger(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)
    MetricName: str | None = None  # absent for metric-math alarms
    Namespace: str | None = None
    Statistic: str | None = None
    ExtendedStatistic: str | None = None
    Dimensions: list[AlarmDimension] = []
    Period: int | None = None
    EvaluationPeriods: int | None = None
    ComparisonOperator: str | None = None
    Threshold: float | None = None
    TreatMissingData: str | None = None


class CloudWatchAlarm(BaseModel):
    """The JSON CloudWatch publishes to SNS when an alarm changes state."""

    model_config = ConfigDict(extra="ignore", defer_build=True)
    AlarmName: str
    AlarmDescription: str | None = None
    AWSAccountId: str
    NewStateValue: Literal["ALARM", "OK", "INSUFFICIENT_DATA"]
    NewStateReason: str
    StateChangeTime: str
    Region: str
    AlarmArn: str
    OldStateValue: str
    Trigger: AlarmTrigger = Field(default_factory=AlarmTrigger)

    def dimension(self, name: str) -> str | None:
        return next((d.value for d in self.Trigger.Dimensions if d.name == name), None)


def _short_name(prefix: str, physical: str | None) -> str | None:
    if physical and physical.startswith(f"{prefix}-"):
        return physical[len(prefix) + 1 :]
    return None


def _alarm_advice(alarm: CloudWatchAlarm, prefix: str, links: ConsoleLinks) -> tuple[str, str, list]:
    """(what it means, what to do, links) for the kinds of alarm the template declares."""
    metric, namespace = alarm.Trigger.MetricName, alarm.Trigger.Namespace
    queue = _short_name(prefix, alarm.dimension("QueueName"))
    function = _short_name(prefix, alarm.dimension("FunctionName"))
    source = alarm.dimension("Source")
    if namespace == "AWS/SQS" and queue in QUEUES and metric == "ApproximateNumberOfMessagesVisible":
        logical = QUEUES[queue]
        what = f"{logical} holds messages: work that failed every attempt and was set aside."
        todo = (
            f"Read the messages (and their failure_reason) in {logical}, fix the cause, then move them back with "
            f"`make redrive QUEUE={logical} STACK={prefix.rsplit('-', 1)[0]}`. Runbook: {RUNBOOK}#dlq-not-empty"
        )
        return what, todo, [(logical, links.queue(queue))]
    if namespace == "AWS/SQS" and queue in QUEUES and metric == "ApproximateAgeOfOldestMessage":
        logical = QUEUES[queue]
        what = f"The oldest message in {logical} has waited longer than expected: its consumer is behind or stuck."
        todo = f"Check the consumer's errors, throttles and logs. Runbook: {RUNBOOK}#queue-age"
        return what, todo, [(logical, links.queue(queue))]
    if namespace == "AWS/Lambda" and function in FUNCTIONS:
        meaning = {
            "Errors": f"{FUNCTIONS[function]} invocations crashed (not single failed records).",
            "Throttles": f"{FUNCTIONS[function]} invocations were throttled.",
            "Duration": f"{FUNCTIONS[function]} ran close to its timeout.",
        }.get(metric or "", f"{FUNCTIONS[function]}: {metric}.")
        anchor = {"Errors": "function-errors", "Throttles": "function-throttles", "Duration": "function-duration"}
        todo = f"Open the logs of the failing invocations. Runbook: {RUNBOOK}#{anchor.get(metric or '', 'alarms')}"
        return meaning, todo, [(f"{function} logs", links.logs(function))]
    if namespace == "OpenDataPipeline" and metric == "FreshnessHours":
        what = f"No fresh data from {source or 'a source'} for more than 26 hours (or no freshness reported)."
        todo = (
            "Check that the daily schedule ran (scheduler logs), then the failures of that source's datasets. "
            f"Runbook: {RUNBOOK}#freshness"
        )
        return what, todo, [("dashboard", links.dashboard())]
    return alarm.AlarmDescription or alarm.AlarmName, f"Runbook: {RUNBOOK}#alarms", []


def alarm_notice(alarm: CloudWatchAlarm, prefix: str, links: ConsoleLinks) -> Notice:
    what, todo, extra = _alarm_advice(alarm, prefix, links)
    short = _short_name(prefix, alarm.AlarmName) or alarm.AlarmName
    state = {"ALARM": "ALARM", "OK": "OK", "INSUFFICIENT_DATA": "NO DATA"}[alarm.NewStateValue]
    header = f"{state}: {alarm.AlarmName}\n{alarm.OldStateValue} -> {alarm.NewStateValue} at {alarm.StateChangeTime}"
    if alarm.NewStateValue == "OK":
        body = _compose(
            header,
            f"Resolved: {what}\nWhy: {alarm.NewStateReason}",
            _links_block([("alarm", links.alarm(alarm.AlarmName)), *extra]),
        )
    else:
        body = _compose(
            header,
            f"What: {what}\nWhy: {alarm.NewStateReason}",
            f"What to do: {todo}",
            _links_block([("alarm", links.alarm(alarm.AlarmName)), *extra, ("dashboard", links.dashboard())]),
        )
    # Every state change is told once; only a duplicate delivery of the same change is a repeat.
    same = f"{alarm.AlarmArn}|{alarm.NewStateValue}|{alarm.StateChangeTime}"
    return Notice(Kind.ALARM, ascii_subject(f"[{prefix}] {state}: {short}"), body, same)


def forwarded_notice(subject: str | None, message: str, prefix: str) -> Notice:
    """An AlarmTopic message that is not a CloudWatch alarm (an AWS Budgets notification): passed on as written."""
    title = subject or "notification on the alarm topic"
    body = _compose(f"AWS NOTIFICATION: {title}", message, f"Runbook: {RUNBOOK}#budget")
    same = hashlib.sha256(f"{title}\n{message}".encode()).hexdigest()
    return Notice(Kind.FORWARDED, ascii_subject(f"[{prefix}] {title}"), body, same)


def parse_alarm(message: str) -> CloudWatchAlarm | None:
    """The alarm in an AlarmTopic message, or None when the message is not CloudWatch alarm JSON."""
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or "AlarmName" not in data or "NewStateValue" not in data:
        return None
    return CloudWatchAlarm.model_validate(data)


# --------------------------------------------------------------------------------------------------------------
# The run ledger: one stored event per business key, reduced to a report; the run settles when every expected
# dataset reached a terminal outcome and the marts were built after the last staging (or nothing was staged)
# --------------------------------------------------------------------------------------------------------------

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


def stamp(moment: datetime) -> str:
    """Fixed-width UTC time, so stamps compare as strings in DynamoDB conditions."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


# --------------------------------------------------------------------------------------------------------------
# The run summary
# --------------------------------------------------------------------------------------------------------------

SUMMARY_COUNTS = ("extracted", "unchanged", "staged", "quarantined", "held", "failed")


def summary_counts(report: RunReport) -> dict[str, int]:
    counts = {"extracted": len(report.extracted)}
    counts.update({o: report.outcome_count(o) for o in OUTCOMES})
    counts["held"] = len(report.held)  # a partly held landing counts as held and as staged
    if report.pending:
        counts["no outcome"] = len(report.pending)
    return counts


def _attention(report: RunReport, links: ConsoleLinks) -> list[str]:
    lines = _dataset_attention(report, links)
    for ref, restored in report.restored.items():
        lines += [f"  restored {ref}: {what}" for what in restored]
    for ref, held in report.held.items():
        lines.append(f"  held {ref} ({held.check}): {held.reason}; kept {held.kept}")
    for failure in report.model_failures:
        lines.append(f"  modeler: {failure.check or failure.error_type}: {failure.reason} (previous mart kept)")
    for key, rows in report.row_quarantines.items():
        lines.append(f"  rows quarantined {rows.source.value}/{rows.dataset}: {rows.reason} ({links.s3_uri(key)})")
    for mart, reason in report.unbuilt_marts.items():
        lines.append(f"  not rebuilt {mart}: {reason} (previous version kept)")
    for failure in report.run_failures:
        lines.append(f"  {failure.stage}: {failure.error_type}: {failure.reason}")
    lines += _pending_attention(report)
    if report.expected is None:
        lines.append("  run.started was never received: the expected datasets are unknown")
    if report.staged_any and not report.modeled_after_staging:
        lines.append(f"  marts were not rebuilt after the last staging ({RUNBOOK}#run-not-settled)")
    return lines


def _dataset_attention(report: RunReport, links: ConsoleLinks) -> list[str]:
    lines = []
    for ref, (outcome, event) in sorted(report.outcomes.items()):
        if outcome == "quarantined" and isinstance(event, DatasetQuarantined):
            lines.append(f"  quarantined {ref}: {event.reason} ({links.s3_uri(event.quarantine_key)})")
        elif outcome == "failed" and isinstance(event, StageFailed):
            lines.append(f"  failed {ref} in the {event.stage}: {event.error_type}: {event.reason}")
    return lines


def _pending_attention(report: RunReport) -> list[str]:
    lines = []
    for ref in report.pending:
        if ref in report.in_flight:
            lines.append(
                f"  no outcome {ref}: landed but never staged or quarantined; look for its landing in TransformDLQ "
                f"({RUNBOOK}#run-not-settled)"
            )
        else:
            lines.append(
                f"  no outcome {ref}: nothing was heard of it before the run was closed; look for its ExtractRequest "
                f"in ExtractDLQ ({RUNBOOK}#run-not-settled)"
            )
    return lines


def summary_notice(
    report: RunReport, prefix: str, links: ConsoleLinks, *, closed_early: bool = False, update: bool = False
) -> Notice:
    """The one message that tells how a run went.

    Parameters
    ----------
    report: the reduced ledger.
    closed_early: the run was closed before it settled (datasets without an outcome are listed).
    update: a summary of this run was sent before; this one follows late outcomes (after a redrive).
    """
    counts = summary_counts(report)
    expected = len(report.expected) if report.expected is not None else None
    head = f"RUN {report.run_id}" + (f" ({report.trigger})" if report.trigger else "")
    state = "closed before it settled" if closed_early else "settled"
    if update:
        head += ": updated summary (late outcomes)"
    timing = (
        f"Started {when(report.first_at)}, {state} after {duration(report.stage_seconds.get('total', 0.0))}"
        if report.first_at
        else state
    )
    dataset_lines = [f"Datasets ({expected if expected is not None else 'unknown'} expected)"]
    dataset_lines += [f"  {name:<12} {counts.get(name, 0):>7,}" for name in SUMMARY_COUNTS]
    if "no outcome" in counts:
        dataset_lines.append(f"  {'no outcome':<12} {counts['no outcome']:>7,}")
    table_lines = ["Rows by table"]
    for table, rows in sorted(report.tables.items()):
        notes = [f"{rows.quarantined:,} quarantined"] if rows.quarantined else []
        notes += [f"{rows.retired:,} retired: no longer upstream"] if rows.retired else []
        extra = f" ({', '.join(notes)})" if notes else ""
        table_lines.append(f"  staging/{table:<32} {rows.written:>12,} written{extra}")
    for mart, rows in sorted(report.marts.items()):
        table_lines.append(f"  marts/{mart:<34} {rows:>12,} {_rows(rows)}")
    if len(table_lines) == 1:
        table_lines.append("  (nothing written)")
    stage_lines = ["Stage times"]
    for stage, label in (
        ("extract", "run start -> last extraction"),
        ("transform", "first landing -> last staging"),
        ("model", "last staging -> marts built"),
        ("total", "run start -> last event"),
    ):
        if stage in report.stage_seconds:
            stage_lines.append(f"  {stage:<10} {duration(report.stage_seconds[stage]):>8}   ({label})")
    attention = _attention(report, links)
    body = _compose(
        f"{head}\n{timing}",
        "\n".join(dataset_lines),
        "\n".join(table_lines),
        "\n".join(stage_lines),
        ("Needs attention\n" + "\n".join(attention)) if attention else "Nothing needs attention.",
        _links_block([("dashboard", links.dashboard())])
        + f"\nLogs Insights (this run): {links.logs_query(report.run_id)}",
    )
    worst = [f"{counts[k]} {k}" for k in ("failed", "quarantined", "held", "no outcome") if counts.get(k)]
    tally = f"{counts['staged']} staged, {counts['unchanged']} unchanged" + (", " + ", ".join(worst) if worst else "")
    subject = f"[{prefix}] Run {report.run_id}: {tally}"
    return Notice(Kind.SUMMARY, ascii_subject(subject), body, f"{report.run_id}|{report.digest}")


# --------------------------------------------------------------------------------------------------------------
# Freshness
# --------------------------------------------------------------------------------------------------------------


def freshness_hours(now: datetime, *confirmed: datetime | None) -> float | None:
    """Hours since a source was last confirmed current in the lake (staged, or checked unchanged upstream)."""
    known = [c for c in confirmed if c is not None]
    if not known:
        return None
    return round(max(0.0, (now - max(known)).total_seconds() / 3600), 3)
