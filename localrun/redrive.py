"""Redrive: move a dead-letter queue's messages back to the queue they came from.

On AWS (``make redrive QUEUE=ExtractDLQ STACK=opendata-dev``): SQS ``StartMessageMoveTask`` moves the DLQ back to
its source queue, and the command waits for the task to finish. SchedulerDLQ is the scheduler's asynchronous
invocation DLQ, not a queue's: its events are invoked again (``InvocationType=Event``), then deleted.

Locally (``make redrive QUEUE=ExtractDLQ``): moto lives only as long as one run, so the local runtime keeps every
DLQ's messages in ``.lake/_local/dead-letters.jsonl`` at the end of a run and puts them back at the start of the next
(as on AWS, where a DLQ keeps its messages for 14 days). A redrive run (``python -m localrun --redrive ExtractDLQ``)
moves them back to their source queue instead of starting a new run, and the pipeline processes them. moto has no
``StartMessageMoveTask``, so the move is done message by message: body and message attributes unchanged, each
message deleted from the DLQ only once it is in its queue.

    python -m localrun.redrive QUEUE [--stack NAME [--region REGION]]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEAD_LETTERS_FILE = "dead-letters.jsonl"
PENDING_FILE = "pending.jsonl"
# DLQ -> the queue whose redrive policy names it (SchedulerDLQ is a function's async DLQ: no source queue).
SOURCE_QUEUES = {
    "ExtractDLQ": "ExtractQueue",
    "TransformDLQ": "TransformQueue",
    "ModelDLQ": "ModelQueue",
    "NotifyDLQ": "NotifyQueue",
}
FUNCTION_DLQS = {"SchedulerDLQ": "SchedulerFunction"}
REDRIVABLE = (*SOURCE_QUEUES, *FUNCTION_DLQS)
DONE_STATES = {"COMPLETED", "FAILED", "CANCELLED"}


class RedriveError(RuntimeError):
    """The DLQ cannot be redriven as asked (unknown queue, a failed move task, no hook in the local runtime)."""


@dataclass(frozen=True)
class Redriven:
    dlq: str
    target: str
    moved: int


# -- local runtime ----------------------------------------------------------------------------------------------


def source_queue_of(cloud: Any, dlq: str) -> str:
    """The queue whose redrive policy names this DLQ, read from the template's declarations."""
    sources = [logical for logical, decl in cloud.queues.items() if decl.dead_letter_logical_id == dlq]
    if len(sources) != 1:
        raise RedriveError(f"{dlq} is not the dead-letter queue of exactly one queue (found {sources or 'none'})")
    return sources[0]


def _receive_all(sqs: Any, url: str, visibility: int = 30) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=visibility,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            return messages
        messages.extend(got)


def _entries(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries = []
    for i, m in enumerate(messages):
        entry: dict[str, Any] = {"Id": str(i), "MessageBody": m["Body"]}
        if m.get("MessageAttributes"):
            entry["MessageAttributes"] = m["MessageAttributes"]
        entries.append(entry)
    return entries


def _send(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    for start in range(0, len(messages), 10):
        chunk = messages[start : start + 10]
        response = sqs.send_message_batch(QueueUrl=url, Entries=_entries(chunk))
        if response.get("Failed"):
            raise RedriveError(f"could not send {len(response['Failed'])} message(s) to {url}: {response['Failed']}")


def redrive_local(cloud: Any, dlq: str) -> Redriven:
    """Move every message of a DLQ on the local runtime back to its source queue.

    Raises
    ------
    RedriveError
        When the DLQ has no source queue (SchedulerDLQ: the local scheduler runs synchronously, so it stays empty).
    """
    if dlq in FUNCTION_DLQS:
        raise RedriveError(f"{dlq} holds failed asynchronous invocations; the local scheduler runs synchronously")
    target = source_queue_of(cloud, dlq)
    sqs = cloud.client("sqs")
    dlq_url, target_url = cloud.queue_urls[dlq], cloud.queue_urls[target]
    moved = 0
    while True:
        batch = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return Redriven(dlq=dlq, target=target, moved=moved)
        _send(sqs, target_url, batch)
        sqs.delete_message_batch(
            QueueUrl=dlq_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
        moved += len(batch)


def _dead_letter_logicals(cloud: Any) -> list[str]:
    return [q for q in cloud.queues if q in SOURCE_QUEUES or q in FUNCTION_DLQS]


def save_dead_letters(cloud: Any, local_dir: Path) -> dict[str, int]:
    """Write every DLQ's messages to ``local_dir/dead-letters.jsonl`` (replacing it); the DLQs keep them.

    Returns
    -------
    The number of messages kept per DLQ.
    """
    return save_queues(cloud, Path(local_dir) / DEAD_LETTERS_FILE, _dead_letter_logicals(cloud))


def save_pending(cloud: Any, local_dir: Path) -> dict[str, int]:
    """Keep the messages still waiting in the pipeline's queues (a deferred BLS request, a stage without code)
    for the next run, which puts them back: moto's queues do not outlive a run, and nothing may be dropped."""
    queues = [q for q in cloud.queues if q in SOURCE_QUEUES.values()]
    return save_queues(cloud, Path(local_dir) / PENDING_FILE, queues)


def restore_pending(cloud: Any, local_dir: Path) -> dict[str, int]:
    """Put the messages a previous run left waiting back into their queues."""
    return restore_dead_letters(cloud, local_dir, file_name=PENDING_FILE)


def save_queues(cloud: Any, path: Path, queues: list[str]) -> dict[str, int]:
    """Write the visible messages of some queues to a JSON-lines file (replacing it); the queues keep them."""
    sqs = cloud.client("sqs")
    lines, counts = [], {}
    for dlq in queues:
        url = cloud.queue_urls[dlq]
        messages = _receive_all(sqs, url)
        for m in messages:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
            lines.append(
                json.dumps(
                    {
                        "queue": dlq,
                        "body": m["Body"],
                        "message_attributes": m.get("MessageAttributes", {}),
                        "sent_timestamp": m.get("Attributes", {}).get("SentTimestamp"),
                    },
                    sort_keys=True,
                )
            )
        if messages:
            counts[dlq] = len(messages)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.replace(path)
    return counts


def restore_dead_letters(cloud: Any, local_dir: Path, file_name: str = DEAD_LETTERS_FILE) -> dict[str, int]:
    """Put the DLQ messages kept by the previous run back into their (new, empty) DLQs."""
    path = Path(local_dir) / file_name
    if not path.exists():
        return {}
    by_queue: dict[str, list[dict[str, Any]]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            kept = json.loads(line)
            by_queue.setdefault(kept["queue"], []).append(
                {"Body": kept["body"], "MessageAttributes": kept.get("message_attributes") or {}}
            )
    sqs = cloud.client("sqs")
    for dlq, messages in by_queue.items():
        if dlq not in cloud.queue_urls:
            raise RedriveError(f"{path} keeps messages of {dlq}, which the template no longer declares")
        _send(sqs, cloud.queue_urls[dlq], messages)
    return {dlq: len(messages) for dlq, messages in by_queue.items()}


# -- AWS ----------------------------------------------------------------------------------------------------------


def _stack_outputs(cfn: Any, stack: str) -> dict[str, str]:
    stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def redrive_aws(
    dlq: str,
    stack: str,
    *,
    cfn: Any,
    sqs: Any,
    lambda_client: Any,
    say: Callable[[str], None] = print,
    poll_seconds: float = 5.0,
    timeout_seconds: float = 3600.0,
) -> Redriven:
    """Redrive a deployed stack's DLQ (the queue is named by its logical id, e.g. ExtractDLQ).

    Raises
    ------
    RedriveError
        On an unknown queue, a move task that fails or does not finish in time.
    """
    if dlq not in REDRIVABLE:
        raise RedriveError(f"unknown DLQ {dlq!r}; one of {', '.join(REDRIVABLE)}")
    outputs = _stack_outputs(cfn, stack)
    url = outputs[f"{dlq}Url"]
    if dlq in FUNCTION_DLQS:
        function = outputs[f"{FUNCTION_DLQS[dlq]}Name"]
        moved = 0
        for m in _receive_all(sqs, url, visibility=300):
            lambda_client.invoke(FunctionName=function, InvocationType="Event", Payload=m["Body"].encode())
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            moved += 1
        say(f"{dlq}: {moved} event(s) invoked again on {function}")
        return Redriven(dlq=dlq, target=function, moved=moved)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    handle = sqs.start_message_move_task(SourceArn=arn)["TaskHandle"]  # no destination: back to each source queue
    say(f"{dlq}: message move task started ({handle})")
    deadline = time.monotonic() + timeout_seconds
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=arn, MaxResults=10)["Results"]
        task = next((t for t in tasks if t.get("TaskHandle") == handle), tasks[0] if tasks else {})
        status = task.get("Status", "UNKNOWN")
        moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
        if status in DONE_STATES:
            if status != "COMPLETED":
                raise RedriveError(f"{dlq}: the move task ended {status}: {task.get('FailureReason', '')}")
            say(f"{dlq}: {moved} message(s) moved back to {SOURCE_QUEUES[dlq]}")
            return Redriven(dlq=dlq, target=SOURCE_QUEUES[dlq], moved=moved)
        if time.monotonic() > deadline:
            raise RedriveError(f"{dlq}: the move task is still {status} after {timeout_seconds:.0f}s ({moved} moved)")
        say(f"{dlq}: {status}, {moved} of {task.get('ApproximateNumberOfMessagesToMove', '?')} moved")
        time.sleep(poll_seconds)


# -- command line ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localrun.redrive", description=__doc__.split("\n\n")[0])
    parser.add_argument("queue", choices=REDRIVABLE, help="the DLQ, by its logical id in template.yaml")
    parser.add_argument("--stack", help="a deployed stack: redrive on AWS instead of the local runtime")
    parser.add_argument("--region", default=None, help="the stack's region (default: the AWS CLI's)")
    args, rest = parser.parse_known_args(argv)
    if args.stack:
        import boto3

        session = boto3.session.Session(region_name=args.region)
        try:
            redrive_aws(
                args.queue,
                args.stack,
                cfn=session.client("cloudformation"),
                sqs=session.client("sqs"),
                lambda_client=session.client("lambda"),
            )
        except RedriveError as exc:
            print(f"redrive failed: {exc}", file=sys.stderr)
            return 1
        return 0
    from localrun import cli

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            cli.parse_args(["--redrive", args.queue])
    except SystemExit:
        print(
            "the local runtime has no --redrive option yet: localrun/cli.py needs the hook described in "
            "localrun/redrive.py (restore_dead_letters / redrive_local / save_dead_letters)",
            file=sys.stderr,
        )
        return 2
    return cli.main(["--redrive", args.queue, *rest])


if __name__ == "__main__":
    sys.exit(main())
