"""Delivers queue messages to the real handlers, in the event shapes Lambda uses.

It honours what the template declares for each SQS event source: the batch size, ReportBatchItemFailures
(only the failed records return to the queue) and, through the queues' redrive policies, maxReceiveCount
(moto moves a message to its DLQ on the receive after the last allowed one).

Local deviation, on purpose: a failed message is made visible again at once instead of after the queue's
visibility timeout, so a local run does not wait minutes between retries. A failed message whose visibility the
handler itself changed (the extractor defers a BLS request when the daily quota is spent) keeps that deferral:
it stays in flight, the run reports it as deferred, and ``release_deferred`` stands in for the wait. Queues are
drained in pipeline order (extract, transform, model, notify), which stands in for the modeler's batching window:
one rebuild serves all the datasets staged by the run.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from localrun.cloud import LocalCloud
from localrun.template import ACCOUNT_ID, REGION, ROOT, EventSourceDecl, FunctionDecl

PIPELINE_ORDER = ("ExtractQueue", "TransformQueue", "ModelQueue", "NotifyQueue")


@dataclass
class LocalContext:
    """Stands in for Lambda's context object: the same attributes Powertools reads."""

    function_name: str
    memory_limit_in_mb: int
    timeout_s: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{self.aws_request_id[:8]}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


@dataclass
class StageStats:
    function: str
    invocations: int = 0
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    crashed_batches: int = 0
    deferred: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def sqs_lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """One record of an SQS event, as Lambda builds it from a ReceiveMessage result."""
    attrs = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attrs.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attrs.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attrs.get("SenderId", ACCOUNT_ID),
            "ApproximateFirstReceiveTimestamp": attrs.get(
                "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
            ),
        },
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def scheduled_event(moment: datetime | None = None, rule: str = "odp-local-daily") -> dict[str, Any]:
    """An EventBridge "Scheduled Event", as the schedule delivers it to the scheduler."""
    moment = moment or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule}"],
        "detail": {},
    }


class Runner:
    """Invokes the template's functions in-process and pumps their queues until the pipeline settles."""

    def __init__(
        self, cloud: LocalCloud, log_stream: TextIO | None = None, progress: Callable[[str], None] | None = None
    ) -> None:
        self.cloud = cloud
        self.log_stream = log_stream or io.StringIO()
        self.progress = progress or (lambda _msg: None)
        self.stats: dict[str, StageStats] = {}
        self._handlers: dict[str, Callable[[dict, Any], Any] | None] = {}
        self.deferred: dict[tuple[str, str], str] = {}  # (queue, message id) -> receipt handle
        self._mappings: list[tuple[str, FunctionDecl, EventSourceDecl]] = []
        for queue in PIPELINE_ORDER:
            for fn in cloud.functions.values():
                for source in fn.sqs_events:
                    if source.queue_logical_id == queue:
                        self._mappings.append((queue, fn, source))

    # -- handlers -------------------------------------------------------------------------------------------
    def handler(self, logical_id: str) -> Callable[[dict, Any], Any] | None:
        """Import a function's handler from its CodeUri; None when that service does not exist yet."""
        if logical_id not in self._handlers:
            decl = self.cloud.functions[logical_id]
            code_dir = str((ROOT / decl.code_uri).resolve())
            module_name, _, attribute = decl.handler.rpartition(".")
            package = module_name.split(".")[0]
            if not (Path(code_dir) / package).is_dir():
                self._handlers[logical_id] = None
                return None
            if code_dir not in sys.path:
                sys.path.insert(0, code_dir)
            # Settings are read at import (cold start): give the module its own function's environment.
            os.environ.update(self.cloud.function_environment(logical_id))
            module = importlib.import_module(module_name)
            self._handlers[logical_id] = getattr(module, attribute)
        return self._handlers[logical_id]

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        """Invoke a function's handler with an event, logs and metrics going to the run's log file."""
        decl = self.cloud.functions[logical_id]
        handler = self.handler(logical_id)
        if handler is None:
            raise LookupError(f"{logical_id} has no code yet ({decl.code_uri})")
        from datalake.observability import logger  # the shared layer, imported with the handlers

        logger.append_keys(service=decl.environment.get("POWERTOOLS_SERVICE_NAME", decl.name))
        context = LocalContext(function_name=decl.name, memory_limit_in_mb=decl.memory, timeout_s=decl.timeout)
        # Logs (a handler created with stdout) and EMF metrics (printed) go to the run's log file, like CloudWatch.
        handler_stream = logger.registered_handler
        previous = handler_stream.stream
        handler_stream.setStream(self.log_stream)
        # In Lambda each function has its own process and its own service logger; here they share one, so child
        # loggers of another service name would fall through to logging's last resort (stderr): catch them too.
        fallback = logging.StreamHandler(self.log_stream)
        fallback.setFormatter(handler_stream.formatter)
        root = logging.getLogger()
        root.addHandler(fallback)
        try:
            with contextlib.redirect_stdout(self.log_stream), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="No application metrics to publish")
                return handler(event, context)
        finally:
            root.removeHandler(fallback)
            handler_stream.setStream(previous)

    # -- queues ---------------------------------------------------------------------------------------------
    def _visible_at_ms(self, queue: str, message_id: str) -> float | None:
        """moto's own record of when a message becomes visible again (its server runs in this process)."""
        from moto.sqs.models import sqs_backends

        backend = sqs_backends[ACCOUNT_ID][REGION]
        for message in backend.queues[self.cloud.queues[queue].name]._messages:
            if message.id == message_id:
                return message.visible_at
        return None

    def release_deferred(self) -> int:
        """Make every deferred message visible now: the local stand-in for waiting out a deferral."""
        sqs = self.cloud.client("sqs")
        for (queue, _message_id), receipt in self.deferred.items():
            sqs.change_message_visibility(
                QueueUrl=self.cloud.queue_urls[queue], ReceiptHandle=receipt, VisibilityTimeout=0
            )
        released = len(self.deferred)
        self.deferred.clear()
        return released

    def _receive(self, queue: str, batch_size: int) -> list[dict[str, Any]]:
        sqs = self.cloud.client("sqs")
        url = self.cloud.queue_urls[queue]
        messages: list[dict[str, Any]] = []
        while len(messages) < batch_size:
            got = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, batch_size - len(messages)),
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            messages.extend(got)
        return messages

    def deliver_batch(self, queue: str, fn: FunctionDecl, source: EventSourceDecl) -> int:
        """Receive one batch from a queue and invoke the function with it; returns the batch size."""
        received_ms = time.time() * 1000
        messages = self._receive(queue, source.batch_size)
        if not messages:
            return 0
        sqs = self.cloud.client("sqs")
        url, arn = self.cloud.queue_urls[queue], self.cloud.arn(queue)
        stats = self.stats.setdefault(fn.logical_id, StageStats(function=fn.name))
        stats.invocations += 1
        stats.received += len(messages)
        event = {"Records": [sqs_lambda_record(m, arn) for m in messages]}
        started = time.monotonic()
        failed_ids: set[str]
        try:
            response = self.invoke(fn.logical_id, event) or {}
            failures = response.get("batchItemFailures", []) if source.report_batch_item_failures else []
            failed_ids = {f["itemIdentifier"] for f in failures}
        except Exception as exc:  # noqa: BLE001 - a crashed invocation fails the whole batch, as in Lambda
            stats.crashed_batches += 1
            stats.errors.append(f"{type(exc).__name__}: {exc}")
            failed_ids = {m["MessageId"] for m in messages}
        stats.seconds += time.monotonic() - started
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
                ],
            )
        timeout_ms = int(self.cloud.queues[queue].attributes.get("VisibilityTimeout", "30")) * 1000
        for m in messages:
            if m["MessageId"] not in failed_ids:
                continue
            visible_at = self._visible_at_ms(queue, m["MessageId"])
            if visible_at is not None and abs(visible_at - (received_ms + timeout_ms)) > 2000:
                self.deferred[(queue, m["MessageId"])] = m["ReceiptHandle"]  # the handler set its own delay
                stats.deferred += 1
                continue
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        stats.succeeded += len(done)
        stats.failed += len(failed_ids)
        return len(messages)

    def drain(self, max_batches: int = 100_000) -> None:
        """Pump the queues in pipeline order until no function with code has anything left to do."""
        for _ in range(max_batches):
            progressed = False
            for queue, fn, source in self._mappings:
                if self.handler(fn.logical_id) is None:
                    continue
                if self.deliver_batch(queue, fn, source):
                    progressed = True
                    self.progress(self.stage_line(fn.logical_id))
                    break  # restart from the head of the pipeline
            if not progressed:
                return
        raise RuntimeError(f"the pipeline did not settle after {max_batches} batches")

    def stage_line(self, logical_id: str) -> str:
        s = self.stats[logical_id]
        deferred = f", {s.deferred} deferred by the handler" if s.deferred else ""
        return (
            f"{s.function}: {s.invocations} invocations, {s.received} messages "
            f"({s.succeeded} ok, {s.failed} retried/failed{deferred}) in {s.seconds:.1f}s"
        )

    def waiting(self) -> dict[str, int]:
        """Messages left in queues whose consumer has no code yet, or that are still in flight."""
        left = {}
        for queue in PIPELINE_ORDER:
            if queue in self.cloud.queue_urls:
                visible, in_flight = self.cloud.queue_counts(queue)
                if visible or in_flight:
                    left[queue] = visible + in_flight
        return left

    def dead_letters(self) -> dict[str, list[dict[str, Any]]]:
        """Every DLQ's messages (peeked: made visible again right away), with their attributes."""
        sqs = self.cloud.client("sqs")
        found: dict[str, list[dict[str, Any]]] = {}
        for logical, decl in self.cloud.queues.items():
            if decl.dead_letter_logical_id is not None or not logical.endswith("DLQ"):
                continue
            url = self.cloud.queue_urls[logical]
            messages: list[dict[str, Any]] = []
            while True:
                got = sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=0,
                    MessageAttributeNames=["All"],
                    AttributeNames=["All"],
                    VisibilityTimeout=30,
                ).get("Messages", [])
                if not got:
                    break
                messages.extend(got)
            for m in messages:
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
            if messages:
                found[logical] = messages
        return found
