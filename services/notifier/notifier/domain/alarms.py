"""CloudWatch alarms as CloudWatch publishes them to SNS, what each kind the template declares means, and the
other messages of the alarm topic (AWS Budgets).

Pure: no boto3, no environment, no Powertools.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from notifier.domain.notice import Kind, Notice, ascii_subject, compose, links_block
from notifier.links import FUNCTIONS, QUEUES, RUNBOOK, ConsoleLinks


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
        body = compose(
            header,
            f"Resolved: {what}\nWhy: {alarm.NewStateReason}",
            links_block([("alarm", links.alarm(alarm.AlarmName)), *extra]),
        )
    else:
        body = compose(
            header,
            f"What: {what}\nWhy: {alarm.NewStateReason}",
            f"What to do: {todo}",
            links_block([("alarm", links.alarm(alarm.AlarmName)), *extra, ("dashboard", links.dashboard())]),
        )
    # Every state change is told once; only a duplicate delivery of the same change is a repeat.
    same = f"{alarm.AlarmArn}|{alarm.NewStateValue}|{alarm.StateChangeTime}"
    return Notice(Kind.ALARM, ascii_subject(f"[{prefix}] {state}: {short}"), body, same)


def forwarded_notice(subject: str | None, message: str, prefix: str) -> Notice:
    """An AlarmTopic message that is not a CloudWatch alarm (an AWS Budgets notification): passed on as written."""
    title = subject or "notification on the alarm topic"
    body = compose(f"AWS NOTIFICATION: {title}", message, f"Runbook: {RUNBOOK}#budget")
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
