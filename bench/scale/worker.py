"""A function's container: a process of its own that imports the handler once (its cold start) and then serves
invocations one at a time, measuring each as Lambda would bill and limit it.

Per invocation: wall time (Lambda's billed duration), CPU time, peak RSS (the high-water mark is reset before each
invocation, so it is this invocation's "max memory used", runtime and imports included), the time the context said
was left at the end, and every AWS API call the function made (by service and operation, counted in botocore).
"""

from __future__ import annotations

import os
import resource
import sys
import time
import traceback
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.scale import paths

CALLS: Counter[tuple[str, str]] = Counter()
TOPICS: Counter[str] = Counter()


def _count_api_calls() -> None:
    """Count every AWS API call this process makes (s3transfer's multipart parts included)."""
    from botocore.client import BaseClient

    original = BaseClient._make_api_call

    def counted(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = self.meta.service_model.service_name
        CALLS[(service, operation_name)] += 1
        if service == "sns" and operation_name == "Publish":
            TOPICS[str(api_params.get("TopicArn", "")).rsplit(":", 1)[-1]] += 1
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = counted  # type: ignore[method-assign]


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak() -> None:
    """Reset the high-water mark to the current RSS (Linux >= 4.0: ``clear_refs`` 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _use_catalog(path: str | None) -> None:
    """The scale's generated catalog instead of the bundled one (the scheduler and the modeler read it)."""
    if not path:
        return
    from datalake import catalog

    generated = catalog.parse_catalog(Path(path).read_text(encoding="utf-8"))
    catalog.load_catalog = lambda _path=None: generated  # type: ignore[assignment]


def serve(conn: Connection, spec: dict[str, Any]) -> None:
    """Import the handler, then answer ``(event)`` messages with ``(result)`` until None."""
    log = open(spec["log_path"], "a", buffering=1)  # noqa: SIM115 - the worker's whole life
    sys.stdout = sys.stderr = log
    os.environ.update(spec["environment"])
    for path in (str(paths.ROOT), str(paths.ROOT / "shared"), spec["code_dir"]):
        if path not in sys.path:
            sys.path.insert(0, path)
    _count_api_calls()
    _use_catalog(spec.get("catalog"))
    from localrun.runner import LocalContext

    started = time.perf_counter()
    cpu = cpu_seconds()
    module_name, _, attribute = spec["handler"].rpartition(".")
    module = __import__(module_name, fromlist=[attribute])
    handler = getattr(module, attribute)
    conn.send({"cold_import_s": time.perf_counter() - started, "cold_import_cpu_s": cpu_seconds() - cpu})
    while True:
        event = conn.recv()
        if event is None:
            return
        CALLS.clear()
        TOPICS.clear()
        reset_peak()
        context = LocalContext(function_name=spec["name"], memory_limit_in_mb=spec["memory"], timeout_s=spec["timeout"])
        cpu, wall = cpu_seconds(), time.perf_counter()
        error = None
        response = None
        try:
            response = handler(event, context)
        except Exception:  # noqa: BLE001 - a crash fails the batch, as in Lambda; the parent reports it
            error = traceback.format_exc()[-2000:]
        conn.send(
            {
                "response": response,
                "error": error,
                "wall_s": time.perf_counter() - wall,
                "cpu_s": cpu_seconds() - cpu,
                "peak_rss_mb": peak_rss_mb(),
                "remaining_ms": context.get_remaining_time_in_millis(),
                "calls": {f"{s}:{o}": n for (s, o), n in CALLS.items()},
                "sns_topics": dict(TOPICS),
            }
        )
