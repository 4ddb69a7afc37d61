"""Redrive: dead letters survive between local runs, go back to their queue, and are processed; on AWS the
move task is started and awaited."""

from __future__ import annotations

import json
import os

import pytest

from datalake.aws import reset_clients
from localrun.cloud import LocalCloud, MotoServer
from localrun.redrive import (
    DEAD_LETTERS_FILE,
    SOURCE_QUEUES,
    RedriveError,
    redrive_aws,
    redrive_local,
    restore_dead_letters,
    save_dead_letters,
)
from localrun.runner import Runner
from tests.conftest import load_event

pytestmark = pytest.mark.integration

CONSUMERS = {
    "ExtractQueue": "ExtractorFunction",
    "TransformQueue": "TransformerFunction",
    "ModelQueue": "ModelerFunction",
    "NotifyQueue": "NotifierFunction",
}


class LocalRun:
    """One local run's worth of cloud: a fresh moto server with the template's resources (as `make run` has)."""

    def __init__(self, monkeypatch) -> None:
        self.server = MotoServer().start()
        monkeypatch.setenv("AWS_ENDPOINT_URL", self.server.endpoint)
        reset_clients()
        self.cloud = LocalCloud(self.server.endpoint, parameter_overrides={"AlertEmail": "inbox@example.org"}).create()

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def runs(monkeypatch):
    started: list[LocalRun] = []

    def start() -> LocalRun:
        if started:
            started[-1].stop()
        started.append(LocalRun(monkeypatch))
        return started[-1]

    yield start
    if started:
        started[-1].stop()


def stand_ins(fail: set[str] | None = None):
    """A consumer per queue that fails (crashes its batch) while its queue is in ``fail`` and records what it got."""
    fail = fail if fail is not None else set()
    seen: dict[str, list[dict]] = {queue: [] for queue in CONSUMERS}

    def consumer(queue: str):
        def handle(event, context):
            if queue in fail:
                raise RuntimeError(f"{queue} consumer is down")
            seen[queue].extend(event["Records"])
            return {"batchItemFailures": []}

        return handle

    return {CONSUMERS[q]: consumer(q) for q in CONSUMERS}, seen


@pytest.mark.parametrize("dlq", sorted(SOURCE_QUEUES))
def test_dead_letters_survive_to_the_next_run_then_go_back_and_are_processed(runs, tmp_path, dlq):
    queue = SOURCE_QUEUES[dlq]
    # GIVEN a run whose consumer of `queue` is down: its messages end in the DLQ after maxReceiveCount
    first = runs()
    sqs = first.cloud.client("sqs")
    url = first.cloud.queue_urls[queue]
    sqs.purge_queue(QueueUrl=url)  # the TransformQueue's s3:TestEvent
    bodies = [json.dumps({"n": n, "queue": queue}) for n in range(3)]
    for body in bodies:
        sqs.send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageAttributes={"failure_reason": {"DataType": "String", "StringValue": "source outage"}},
        )
    handlers, _ = stand_ins(fail={queue})
    runner = Runner(first.cloud)
    runner._handlers.update(handlers)
    runner.drain()
    assert sorted(m["Body"] for m in runner.dead_letters()[dlq]) == sorted(bodies)
    # AND the run ends by keeping the DLQ's messages beside the lake
    assert save_dead_letters(first.cloud, tmp_path) == {dlq: 3}

    # WHEN the next run starts (a new moto), the DLQ gets them back, and a redrive moves them to their queue
    second = runs()
    assert restore_dead_letters(second.cloud, tmp_path) == {dlq: 3}
    moved = redrive_local(second.cloud, dlq)
    assert (moved.target, moved.moved) == (queue, 3)
    assert second.cloud.queue_counts(dlq) == (0, 0)

    # THEN the consumer, now up, processes every one of them, with body and attributes intact
    handlers, seen = stand_ins()
    runner = Runner(second.cloud)
    runner._handlers.update(handlers)
    runner.drain()
    got = [r for r in seen[queue] if r["body"] in bodies]
    assert sorted(r["body"] for r in got) == sorted(bodies)
    assert {r["messageAttributes"]["failure_reason"]["stringValue"] for r in got} == {"source outage"}
    assert runner.dead_letters() == {}
    assert save_dead_letters(second.cloud, tmp_path) == {}
    assert (tmp_path / DEAD_LETTERS_FILE).read_text() == ""


def test_the_notifier_processes_redriven_events_and_sends_the_summary(runs, tmp_path, monkeypatch):
    # GIVEN a run's events, delivered to the NotifyQueue by the PipelineTopic while the notifier was down
    first = runs()
    sns = first.cloud.client("sns")
    completion = load_event("notifier_run_completion.json")
    for record in completion["Records"]:
        envelope = json.loads(record["body"])
        sns.publish(
            TopicArn=first.cloud.ref("PipelineTopic"),
            Message=envelope["Message"],
            MessageAttributes={
                k: {"DataType": "String", "StringValue": v["Value"]} for k, v in envelope["MessageAttributes"].items()
            },
        )
    handlers, _ = stand_ins(fail={"NotifyQueue"})
    runner = Runner(first.cloud)
    runner._handlers.update(handlers)
    runner.drain()
    assert len(runner.dead_letters()["NotifyDLQ"]) == len(completion["Records"])
    save_dead_letters(first.cloud, tmp_path)

    # WHEN the next local run redrives NotifyDLQ to the real notifier
    second = runs()
    restore_dead_letters(second.cloud, tmp_path)
    assert redrive_local(second.cloud, "NotifyDLQ").moved == len(completion["Records"])
    from datalake.settings import NotifierSettings, load_settings
    from notifier import handler
    from notifier.service import build_notifier

    settings = load_settings(NotifierSettings, {**os.environ, **second.cloud.function_environment("NotifierFunction")})
    runner = Runner(second.cloud)
    runner._handlers.update(
        {"ExtractorFunction": None, "TransformerFunction": None, "ModelerFunction": None, "NotifierFunction": None}
    )
    runner._handlers["NotifierFunction"] = handler.lambda_handler
    with handler.notifier.use(build_notifier(settings)):
        runner.drain()

    # THEN every event was processed, and the run's summary reached the alerts inbox (what `make run` prints)
    stats = runner.stats["NotifierFunction"]
    assert (stats.succeeded, stats.failed) == (len(completion["Records"]), 0)
    sqs = second.cloud.client("sqs")
    inbox = sqs.receive_message(QueueUrl=second.cloud.inboxes["AlertsTopic"], MaxNumberOfMessages=10)["Messages"]
    bodies = [m["Body"] for m in inbox]
    assert any(b.startswith("RUN 20261121T080000Z-3f9a1c2e (schedule)\n") for b in bodies)
    assert any(b.startswith("QUARANTINED: socrata/9uvn-hv6j\n") for b in bodies)
    assert runner.dead_letters() == {}


def test_the_scheduler_dlq_is_not_a_queue_to_move_locally(runs):
    with pytest.raises(RedriveError, match="runs synchronously"):
        redrive_local(runs().cloud, "SchedulerDLQ")


# -- AWS: StartMessageMoveTask, awaited; the scheduler's async DLQ is invoked again ------------------------------


class FakeCfn:
    def describe_stacks(self, StackName):
        base = "https://sqs.us-east-1.amazonaws.com/123456789012/opendata-dev"
        return {
            "Stacks": [
                {
                    "Outputs": [
                        {"OutputKey": "ExtractDLQUrl", "OutputValue": f"{base}-extract-dlq"},
                        {"OutputKey": "SchedulerDLQUrl", "OutputValue": f"{base}-scheduler-dlq"},
                        {"OutputKey": "SchedulerFunctionName", "OutputValue": "opendata-dev-scheduler"},
                    ]
                }
            ]
        }


class FakeSqs:
    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.calls: list[tuple] = []
        self.scheduler_dlq = [{"Body": json.dumps({"trigger": "manual"}), "ReceiptHandle": "rh-1"}]

    def get_queue_attributes(self, QueueUrl, AttributeNames):
        name = QueueUrl.rsplit("/", 1)[1]
        return {"Attributes": {"QueueArn": f"arn:aws:sqs:us-east-1:123456789012:{name}"}}

    def start_message_move_task(self, **kwargs):
        self.calls.append(("start", kwargs))
        return {"TaskHandle": "task-1"}

    def list_message_move_tasks(self, SourceArn, MaxResults):
        status = self.statuses.pop(0)
        return {
            "Results": [
                {
                    "TaskHandle": "task-1",
                    "Status": status,
                    "ApproximateNumberOfMessagesMoved": 7 if status == "COMPLETED" else 3,
                    "ApproximateNumberOfMessagesToMove": 7,
                    "FailureReason": "AccessDenied" if status == "FAILED" else None,
                }
            ]
        }

    def receive_message(self, **kwargs):
        got, self.scheduler_dlq = self.scheduler_dlq, []
        return {"Messages": got}

    def delete_message(self, QueueUrl, ReceiptHandle):
        self.calls.append(("delete", QueueUrl, ReceiptHandle))


class FakeLambda:
    def __init__(self):
        self.invocations = []

    def invoke(self, **kwargs):
        self.invocations.append(kwargs)
        return {"StatusCode": 202}


def test_aws_redrive_starts_a_move_task_back_to_the_source_and_waits_for_it():
    sqs = FakeSqs(["RUNNING", "COMPLETED"])
    said: list[str] = []
    result = redrive_aws(
        "ExtractDLQ",
        "opendata-dev",
        cfn=FakeCfn(),
        sqs=sqs,
        lambda_client=FakeLambda(),
        say=said.append,
        poll_seconds=0,
    )
    assert sqs.calls == [("start", {"SourceArn": "arn:aws:sqs:us-east-1:123456789012:opendata-dev-extract-dlq"})]
    assert (result.target, result.moved) == ("ExtractQueue", 7)
    assert said[-1] == "ExtractDLQ: 7 message(s) moved back to ExtractQueue"


def test_aws_redrive_reports_a_failed_move_task():
    with pytest.raises(RedriveError, match="FAILED: AccessDenied"):
        redrive_aws(
            "ExtractDLQ", "opendata-dev", cfn=FakeCfn(), sqs=FakeSqs(["FAILED"]), lambda_client=FakeLambda(), say=print
        )


def test_aws_redrive_of_the_scheduler_dlq_invokes_the_scheduler_again():
    sqs, lam = FakeSqs([]), FakeLambda()
    result = redrive_aws("SchedulerDLQ", "opendata-dev", cfn=FakeCfn(), sqs=sqs, lambda_client=lam, say=print)
    assert lam.invocations == [
        {"FunctionName": "opendata-dev-scheduler", "InvocationType": "Event", "Payload": b'{"trigger": "manual"}'}
    ]
    assert sqs.calls == [
        ("delete", "https://sqs.us-east-1.amazonaws.com/123456789012/opendata-dev-scheduler-dlq", "rh-1")
    ]
    assert result.moved == 1
