"""The notifier's use cases: keep the run ledger, tell failures, alarms and settled runs once, report freshness.

The handler parses events and records metrics; this module calls the domain and the adapters it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from datalake.contracts import DatasetHeld, DatasetQuarantined, MartsBuilt, PipelineEvent, Source, StageFailed
from notifier.delivery import AlertsTopic, DeliveryGuard, Webhook
from notifier.domain.alarms import alarm_notice, forwarded_notice, parse_alarm
from notifier.domain.events import held_notice, marts_notice, quarantined_notice, stage_failed_notice
from notifier.domain.notice import Notice
from notifier.domain.runs import RunReport, reduce_run
from notifier.domain.summary import freshness_hours, summary_notice
from notifier.ledger import RunLedger
from notifier.links import ConsoleLinks

SUMMARY_WINDOW = timedelta(days=30)  # a run's summary is told once; a repeat within a month is a duplicate


@dataclass(frozen=True)
class Delivery:
    notice: Notice
    status: Literal["sent", "suppressed", "already sent"]
    channels: tuple[str, ...] = ()
    report: RunReport | None = None  # the run a summary tells of


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Ports:
    """What the notifier reads and writes. Each is an adapter over one AWS resource; a test hands it fakes.

    ledger: the run ledger and the sources' freshness marks (the state table).
    guard: claims a notice before it is sent, so each goes out once per window (the state table).
    topic: the alerts topic (email).
    webhook: the optional chat webhook, whose URL is a parameter in SSM.
    """

    ledger: RunLedger
    guard: DeliveryGuard
    topic: AlertsTopic
    webhook: Webhook


@dataclass
class Notifier:
    ports: Ports
    links: ConsoleLinks
    window: timedelta
    clock: Callable[[], datetime] = _utcnow

    @property
    def prefix(self) -> str:
        return self.links.prefix

    # -- delivery ---------------------------------------------------------------------------------------------
    def deliver(self, notice: Notice, delivery_id: str, window: timedelta | None = None) -> Delivery:
        """Send a notice on every channel that does not have it yet, unless it repeats one sent in the window.

        Raises
        ------
        notifier.delivery.DeliveryError, datalake.state.StateError
            When a channel or the state table fails; the channels already served are remembered.
        """
        window = self.window if window is None else window
        claim = self.ports.guard.claim(notice.fingerprint, delivery_id, self.clock(), window)
        if not claim.send:
            return Delivery(notice, "suppressed")
        if claim.suppressed_before:
            minutes = int(window.total_seconds() // 60)
            notice = notice.with_note(
                f"({claim.suppressed_before} repeat(s) of this notice were not sent in the previous {minutes} min.)"
            )
        sent: list[str] = []
        if "email" not in claim.channels_done:
            self.ports.topic.send(notice)
            self.ports.guard.mark(notice.fingerprint, "email")
            sent.append("email")
        if "webhook" not in claim.channels_done and self.ports.webhook.send(notice):
            self.ports.guard.mark(notice.fingerprint, "webhook")
            sent.append("webhook")
        self.ports.guard.complete(notice.fingerprint)
        return Delivery(notice, "sent" if sent else "already sent", tuple(sent))

    # -- pipeline events --------------------------------------------------------------------------------------
    def on_pipeline_event(self, event: PipelineEvent, delivery_id: str) -> list[Delivery]:
        """Record the event in the run ledger, tell it if people need to know, and summarise a settled run.

        Parameters
        ----------
        event: a validated pipeline event.
        delivery_id: the SNS MessageId, so a retry of this delivery resumes its own claims.
        """
        hint = self.ports.ledger.record(event, self.clock())
        self.ports.ledger.record_freshness(event)
        deliveries = []
        notice = self._immediate_notice(event, run_known=hint.expected is not None)
        if notice is not None:
            deliveries.append(self.deliver(notice, delivery_id))
        if hint.may_be_settled:
            deliveries.extend(self.summarise(event.run_id, delivery_id, force=False))
        return deliveries

    def _immediate_notice(self, event: PipelineEvent, run_known: bool) -> Notice | None:
        if isinstance(event, StageFailed):
            return stage_failed_notice(event, self.prefix, self.links)
        if isinstance(event, DatasetQuarantined):
            return quarantined_notice(event, self.prefix, self.links)
        if isinstance(event, DatasetHeld):
            return held_notice(event, self.prefix, self.links)
        if isinstance(event, MartsBuilt) and not run_known:
            # A build outside a run the ledger knows (a redrive, a manual rebuild) has no summary to go into.
            return marts_notice(event, self.prefix, self.links)
        return None

    # -- run summaries ----------------------------------------------------------------------------------------
    def summarise(self, run_id: str, delivery_id: str, force: bool) -> list[Delivery]:
        """Send the run's summary if it settled (or, with ``force``, close it as it stands).

        A summary goes out once per state of the ledger: a duplicate event changes nothing, and a late outcome
        (after a redrive) that settles the run again sends an updated summary.
        """
        report = reduce_run(run_id, self.ports.ledger.events(run_id))
        if not report.settled and not force:
            return []
        record = self.ports.ledger.summary(run_id) or {}
        if int(record.get("summaries_sent", 0)) and record.get("last_digest") == report.digest:
            self.ports.ledger.close(run_id)
            return []
        notice = summary_notice(
            report,
            self.prefix,
            self.links,
            closed_early=not report.settled,
            update=int(record.get("summaries_sent", 0)) > 0,
        )
        delivery = replace(self.deliver(notice, delivery_id, SUMMARY_WINDOW), report=report)
        if delivery.status == "suppressed":
            self.ports.ledger.close(run_id)  # the delivery that claimed this very summary sends it
        else:
            self.ports.ledger.mark_summarised(run_id, report.digest, self.clock())
        return [delivery]

    def settle(self, run_id: str | None, older_than: timedelta, delivery_id: str) -> list[Delivery]:
        """Close runs that did not settle by themselves: one run, or every open run older than ``older_than``.

        A dataset whose ExtractRequest went to ExtractDLQ after maxReceiveCount (a crash, a timeout) emits no
        event, so its run can only be closed this way: the summary lists it under "no outcome".
        """
        if run_id is not None:
            return self.summarise(run_id, delivery_id, force=True)
        now, deliveries = self.clock(), []
        for open_run in self.ports.ledger.open_runs():
            if now - open_run.first_seen_at >= older_than:
                deliveries.extend(self.summarise(open_run.run_id, delivery_id, force=True))
        return deliveries

    # -- alarms -----------------------------------------------------------------------------------------------
    def on_alarm_topic_message(self, subject: str | None, message: str, delivery_id: str) -> Delivery:
        """A CloudWatch alarm state change, or another AWS notification on the alarm topic (AWS Budgets)."""
        alarm = parse_alarm(message)
        if alarm is not None:
            return self.deliver(alarm_notice(alarm, self.prefix, self.links), delivery_id)
        return self.deliver(forwarded_notice(subject, message, self.prefix), delivery_id)

    # -- freshness --------------------------------------------------------------------------------------------
    def freshness(self) -> dict[str, float | None]:
        """Hours since each source was last confirmed current in the lake (None: never)."""
        now = self.clock()
        return {s.value: freshness_hours(now, *self.ports.ledger.freshness_marks(s.value)) for s in Source}


def build_notifier(settings: Any) -> Notifier:
    """The notifier wired to AWS from a validated ``NotifierSettings``."""
    _, _, _, region, account, _ = settings.alerts_topic_arn.split(":", 5)
    return Notifier(
        ports=Ports(
            ledger=RunLedger(settings.state_table),
            guard=DeliveryGuard(settings.state_table),
            topic=AlertsTopic(settings.alerts_topic_arn),
            webhook=Webhook(settings.webhook_url_param),
        ),
        links=ConsoleLinks(
            region=region,
            account_id=account,
            prefix=settings.resource_prefix or "",
            lake_bucket=settings.lake_bucket,
            log_group_prefix=settings.log_group_prefix,
        ),
        window=timedelta(minutes=settings.dedupe_window_minutes),
    )
