"""What the notifier reports over time: the one summary of a run, and how fresh each source is.

Pure: no boto3, no environment, no Powertools.
"""

from __future__ import annotations

from datetime import datetime

from datalake.contracts import DatasetQuarantined, StageFailed
from notifier.domain.notice import (
    MESSAGE_LIMIT_BYTES,
    Kind,
    Notice,
    ascii_subject,
    compose,
    duration,
    fit_groups,
    links_block,
    rows_word,
    size,
    when,
)
from notifier.domain.runs import OUTCOMES, RunReport
from notifier.links import RUNBOOK, ConsoleLinks

SUMMARY_COUNTS = ("extracted", "unchanged", "staged", "quarantined", "held", "failed")


def summary_counts(report: RunReport) -> dict[str, int]:
    counts = {"extracted": len(report.extracted)}
    counts.update({o: report.outcome_count(o) for o in OUTCOMES})
    counts["held"] = len(report.held)  # a partly held landing counts as held and as staged
    if report.pending:
        counts["no outcome"] = len(report.pending)
    return counts


def _attention(report: RunReport, links: ConsoleLinks) -> list[list[str]]:
    """What needs attention, in groups of one kind each (a group is cut as a whole when the message is too long)."""
    groups = [
        _dataset_attention(report, links),
        [f"  restored {ref}: {what}" for ref, restored in report.restored.items() for what in restored],
        [f"  held {ref} ({held.check}): {held.reason}; kept {held.kept}" for ref, held in report.held.items()],
        [
            f"  modeler: {failure.check or failure.error_type}: {failure.reason} (previous mart kept)"
            for failure in report.model_failures
        ],
        [
            f"  rows quarantined {rows.source.value}/{rows.dataset}: {rows.reason} ({links.s3_uri(key)})"
            for key, rows in report.row_quarantines.items()
        ],
        [f"  not rebuilt {mart}: {reason} (previous version kept)" for mart, reason in report.unbuilt_marts.items()],
        [f"  {failure.stage}: {failure.error_type}: {failure.reason}" for failure in report.run_failures],
        _pending_attention(report),
    ]
    notes = []
    if report.expected is None:
        notes.append("  run.started was never received: the expected datasets are unknown")
    if report.staged_any and not report.modeled_after_staging:
        notes.append(f"  marts were not rebuilt after the last staging ({RUNBOOK}#run-not-settled)")
    return [group for group in [*groups, notes] if group]


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
        table_lines.append(f"  marts/{mart:<34} {rows:>12,} {rows_word(rows)}")
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
    parts = [f"{head}\n{timing}", "\n".join(dataset_lines), "\n".join(table_lines), "\n".join(stage_lines)]
    links_part = links_block([("dashboard", links.dashboard())])
    links_part += f"\nLogs Insights (this run): {links.logs_query(report.run_id)}"
    if attention:
        # a run where thousands of datasets failed must still be told: the list is cut to fit SNS, never the counts
        heading = "Needs attention (lists cut to fit the 256 KB an SNS message holds; the counts above are whole)\n"
        lines = fit_groups(attention, MESSAGE_LIMIT_BYTES - size(compose(*parts, heading, links_part)) - 64)
        if lines == [line for group in attention for line in group]:
            heading = "Needs attention\n"
        body = compose(*parts, heading + "\n".join(lines), links_part)
    else:
        body = compose(*parts, "Nothing needs attention.", links_part)
    worst = [f"{counts[k]} {k}" for k in ("failed", "quarantined", "held", "no outcome") if counts.get(k)]
    tally = f"{counts['staged']} staged, {counts['unchanged']} unchanged" + (", " + ", ".join(worst) if worst else "")
    subject = f"[{prefix}] Run {report.run_id}: {tally}"
    return Notice(Kind.SUMMARY, ascii_subject(subject), body, f"{report.run_id}|{report.digest}")


def freshness_hours(now: datetime, *confirmed: datetime | None) -> float | None:
    """Hours since a source was last confirmed current in the lake (staged, or checked unchanged upstream)."""
    known = [c for c in confirmed if c is not None]
    if not known:
        return None
    return round(max(0.0, (now - max(known)).total_seconds() / 3600), 3)
