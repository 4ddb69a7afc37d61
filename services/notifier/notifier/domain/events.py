"""Notices for pipeline events told as they come: a stage failed, a landing quarantined, a snapshot held, marts
built outside a run the ledger knows.

Pure: no boto3, no environment, no Powertools.
"""

from __future__ import annotations

from datalake.contracts import DatasetHeld, DatasetQuarantined, MartsBuilt, StageFailed
from notifier.domain.notice import (
    Kind,
    Notice,
    ascii_subject,
    compose,
    dataset_ref,
    links_block,
    normalise_reason,
    rows_word,
    when,
)
from notifier.links import DLQ_OF_STAGE, RUNBOOK, ConsoleLinks

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
    body = compose(
        f"FAILED in the {event.stage}: {target}\nRun {event.run_id}, {when(event.occurred_at)}",
        f"What failed: {what}.\nWhy: {event.error_type}: {event.reason}",
        f"What to do: {_WHAT_TO_DO[event.stage]}\nRunbook: {RUNBOOK}#stage-failed",
        links_block(
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
        f"the transformer staged {staged:,} {rows_word(staged)} of {ref} and rejected "
        + (f"{rejected:,} {rows_word(rejected)}" if rejected else "part of the landing")
        + " (quarantined)."
    )


def quarantined_notice(event: DatasetQuarantined, prefix: str, links: ConsoleLinks) -> Notice:
    ref = dataset_ref(event) or "an unknown dataset"
    body = compose(
        f"QUARANTINED: {ref}\nRun {event.run_id}, {when(event.occurred_at)}",
        f"What failed: {_quarantined_what(event, ref)}\nWhy: {event.reason}",
        "What to do: read the reason and the rejected payload in quarantine; the raw landing is untouched. If the "
        "source changed its format, fix the transformer, then reprocess the landing (runbook). If the source "
        f"served an error page, the next run fetches it again.\nRunbook: {RUNBOOK}#dataset-quarantined",
        f"Quarantine: {links.s3_uri(event.quarantine_key)}\nLanding manifest: {links.s3_uri(event.manifest_key)}",
        links_block(
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
    body = compose(
        f"HELD: {ref}\nRun {event.run_id}, {when(event.occurred_at)}",
        f"What was wrong ({event.check}): {event.reason}",
        f"What was kept: {event.kept}. The new snapshot is landed raw, not staged: {links.s3_uri(event.held_key)}",
        f"What to do: {todo}\nRunbook: {RUNBOOK}#held-snapshots",
        links_block(
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
    lines = [f"  {m.name:<32} {m.rows:>12,} {rows_word(m.rows)}  {links.s3_uri(m.key)}" for m in event.marts]
    skipped = [f"  {name}: {event.skipped_reasons.get(name, 'inputs not ready')}" for name in event.skipped]
    set_aside = [
        f"  {q.source.value}/{q.dataset}: {q.reason} ({links.s3_uri(q.quarantine_key)})" for q in event.quarantined
    ]
    body = compose(
        f"MARTS BUILT: {len(event.marts)} mart(s)\nRun {event.run_id}, {when(event.occurred_at)}",
        "Built:\n" + ("\n".join(lines) if lines else "  (none)"),
        ("Not rebuilt (previous version kept):\n" + "\n".join(skipped)) if skipped else "",
        ("Rows quarantined (the rest of each dataset was modelled):\n" + "\n".join(set_aside)) if set_aside else "",
        links_block([("dashboard", links.dashboard()), ("modeler logs", links.logs("modeler"))]),
    )
    same = event.run_id + "|" + ",".join(sorted(f"{m.name}={m.key}" for m in event.marts))
    subject = f"[{prefix}] MARTS BUILT: {', '.join(m.name for m in event.marts) or 'none'}"
    return Notice(Kind.MARTS, ascii_subject(subject), body, same)
