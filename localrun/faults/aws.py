"""AWS faults through botocore's event system, on the functions' shared clients (``datalake.aws.client``): an S3
operation answered with an error status from ``before-send`` (botocore's own retries then run), or the function's
process "crashing" just before or just after an S3 call; and the count of S3 writes of a clean run."""

from __future__ import annotations

import fnmatch
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from localrun.faults.spec import AwsFault


class SimulatedCrash(BaseException):  # noqa: N818 - it stands for the process dying, not an error to handle
    """The function's process dies here. A BaseException: no ``except Exception`` in the handler stops it."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


class FunctionCrashed(RuntimeError):
    """What the runner sees of a crashed invocation: the whole batch fails, as when Lambda's process dies."""


def s3_key_of(url: str, bucket: str) -> str:
    """The object key of an S3 request URL, path-style (``/bucket/key``) or virtual-hosted."""
    path = unquote(urlsplit(url).path)
    prefix = f"/{bucket}/"
    return path[len(prefix) :] if path.startswith(prefix) else path.lstrip("/")


class _ErrorBody:
    """A raw HTTP body for botocore's AWSResponse."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_kwargs: Any) -> Any:
        yield self.body


@dataclass
class AwsFaultTally:
    fault: AwsFault
    matched: int = 0
    injected: int = 0
    keys: list[str] = field(default_factory=list)


class AwsFaults:
    """botocore event handlers on the functions' shared clients."""

    def __init__(self, faults: list[AwsFault], bucket: str) -> None:
        self.tallies = [AwsFaultTally(f) for f in faults]
        self.bucket = bucket
        self._lock = threading.Lock()

    def _take(self, tally: AwsFaultTally, key: str) -> bool:
        if not fnmatch.fnmatchcase(key, tally.fault.key):
            return False
        with self._lock:
            tally.matched += 1
            if tally.fault.times is not None and tally.injected >= tally.fault.times:
                return False
            tally.injected += 1
            tally.keys.append(key)
            return True

    def install(self, client: Any) -> None:
        events = client.meta.events
        for tally in self.tallies:
            fault = tally.fault
            suffix = f"{client.meta.service_model.service_id.hyphenize()}.{fault.operation}"
            if fault.kind == "error":
                events.register(f"before-send.{suffix}", self._error_handler(tally))
            elif fault.when == "before":
                events.register(f"before-parameter-build.{suffix}", self._crash_before(tally))
            else:
                events.register(f"before-parameter-build.{suffix}", self._remember_key)
                events.register(f"after-call.{suffix}", self._crash_after(tally))

    def _error_handler(self, tally: AwsFaultTally) -> Callable[..., Any]:
        def handler(request: Any, **_kwargs: Any) -> Any:
            from botocore.awsrequest import AWSResponse

            if not self._take(tally, s3_key_of(request.url, self.bucket)):
                return None
            body = (
                f"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>{tally.fault.code}</Code>"
                f"<Message>injected by localrun.faults</Message><RequestId>fault</RequestId></Error>"
            ).encode()
            return AWSResponse(request.url, tally.fault.status, {"Content-Type": "application/xml"}, _ErrorBody(body))

        return handler

    def _crash_before(self, tally: AwsFaultTally) -> Callable[..., None]:
        def handler(params: dict[str, Any], **_kwargs: Any) -> None:
            key = str(params.get("Key", ""))
            if self._take(tally, key):
                raise SimulatedCrash(f"crashed before {tally.fault.operation} {key}", key)

        return handler

    @staticmethod
    def _remember_key(params: dict[str, Any], context: dict[str, Any], **_kwargs: Any) -> None:
        context["localrun_fault_key"] = str(params.get("Key", ""))

    def _crash_after(self, tally: AwsFaultTally) -> Callable[..., None]:
        def handler(http_response: Any, context: dict[str, Any], **_kwargs: Any) -> None:
            key = context.get("localrun_fault_key", "")
            if 200 <= http_response.status_code < 300 and self._take(tally, key):
                raise SimulatedCrash(f"crashed after {tally.fault.operation} {key}", key)

        return handler

    def report(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"fault": t.fault.describe(), "matched": t.matched, "injected": t.injected, "keys": t.keys}
                for t in self.tallies
            ]


class S3Writes:
    """Counts the S3 write requests of the functions, per operation and key (attempts, retries included)."""

    OPERATIONS = ("PutObject", "CopyObject", "DeleteObject", "DeleteObjects")

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.counts: dict[str, Counter[str]] = {op: Counter() for op in self.OPERATIONS}
        self._lock = threading.Lock()

    def install(self, client: Any) -> None:
        for operation in self.OPERATIONS:
            client.meta.events.register(f"before-send.s3.{operation}", self._counter(operation))

    def _counter(self, operation: str) -> Callable[..., None]:
        def count(request: Any, **_kwargs: Any) -> None:
            with self._lock:
                self.counts[operation][s3_key_of(request.url, self.bucket)] += 1

        return count

    def report(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {op: dict(sorted(c.items())) for op, c in self.counts.items() if c}


def crash_tolerant(handler: Callable[[dict, Any], Any], name: str) -> Callable[[dict, Any], Any]:
    """The handler, with a simulated process death turned into what the runner sees of one: a failed invocation.

    The death is logged as Lambda's runtime logs one (an ERROR line of the invocation), with the source and
    dataset of the key being written, so the logs say why its messages come back and may end in a DLQ.
    """

    def invoke(event: dict, context: Any) -> Any:
        try:
            return handler(event, context)
        except SimulatedCrash as crash:
            from datalake.observability import logger

            pieces = crash.key.split("/")
            where = {"source": pieces[1], "dataset": pieces[2]} if len(pieces) > 2 else {}
            logger.error(
                "the function's process died (Runtime.ExitError)",
                extra={"reason": f"the process died: {crash}", "error_type": "Runtime.ExitError", **where},
            )
            raise FunctionCrashed(f"{name}: the process died ({crash})") from None

    return invoke
