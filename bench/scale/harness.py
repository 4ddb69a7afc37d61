"""One pipeline run at one scale, through the real handlers, with Lambda's limits emulated and every call counted.

* moto's server runs in a process of its own (its memory and its threads are not the functions');
* each function runs in a process of its own (``bench.scale.worker``): its first import is its cold start, and
  every invocation is measured there: duration, CPU, peak RSS against MemorySize, the time left against Timeout;
  an invocation that outlives its Timeout is killed, as Lambda kills it (the batch fails and is redelivered);
* the local runtime's ``Runner`` delivers the queues as Lambda's event source mappings do (batch sizes, partial
  batch failures, maxReceiveCount), here through those processes; its SQS calls stand for the mappings' polling;
* the replay server serves the scale's inputs, the large Socrata dataset page by page after a delay.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.scale import paths
from bench.scale.generate import LARGE_DATASET, LargeDataset, Scale

FUNCTIONS = ("SchedulerFunction", "ExtractorFunction", "TransformerFunction", "ModelerFunction", "NotifierFunction")
# How many invocations of each function run at once: the event sources' MaximumConcurrency in template.yaml (the
# modeler's rebuild lock lets one rebuild run at a time; the notifier's source sets none: two here).
CONCURRENCY = {"ExtractorFunction": 2, "TransformerFunction": 4, "ModelerFunction": 1, "NotifierFunction": 2}
TIMEOUT_GRACE_S = 5.0


@dataclass
class Invocation:
    function: str
    records: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    remaining_ms: int
    calls: dict[str, int]
    sns_topics: dict[str, int]
    cold_import_s: float = 0.0
    error: str | None = None
    timed_out: bool = False


@dataclass
class PassResult:
    label: str
    run_id: str
    elapsed_s: float
    invocations: list[Invocation] = field(default_factory=list)
    polling: Counter = field(default_factory=Counter)  # the event source mappings' SQS calls
    received: dict[str, int] = field(default_factory=dict)  # messages delivered per queue
    dead_letters: dict[str, int] = field(default_factory=dict)
    outcomes: Counter = field(default_factory=Counter)
    large_pages: int = 0


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoProcess:
    """moto's server in a child process."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = log_path.open("w")
        code = (
            "import sys, time; sys.path.insert(0, sys.argv[2]); from localrun.cloud import MotoServer; "
            "MotoServer(int(sys.argv[1])).start(); time.sleep(10**9)"
        )
        # glibc's malloc keeps the large request bodies moto's threads free in per-thread arenas (its RSS reached
        # 12 GB at 100x): large blocks are mapped and unmapped instead, and two arenas serve every thread.
        environment = {**os.environ, "MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(self.port), str(paths.ROOT)],
            stdout=self._log,
            stderr=self._log,
            env=environment,
        )
        for _ in range(300):
            try:
                if requests.get(f"{self.endpoint}/moto-api/", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("moto's server did not start")

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


class Container:
    """One function's worker process, started on first use (a cold start) and after a timeout kill."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.process: Any = None
        self.conn: Any = None
        self.cold_import_s = 0.0

    def start(self) -> float:
        from bench.scale.worker import serve

        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, self.spec), daemon=True)
        self.process.start()
        self.conn = parent
        if not self.conn.poll(120):
            raise RuntimeError(f"{self.spec['name']} did not start")
        hello = self.conn.recv()
        return hello["cold_import_s"]

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        cold = 0.0
        if self.process is None or not self.process.is_alive():
            cold = self.start()
        self.conn.send(event)
        if not self.conn.poll(self.spec["timeout"] + TIMEOUT_GRACE_S):
            self.kill()
            return {"timed_out": True, "wall_s": float(self.spec["timeout"]), "cold_import_s": cold}
        result = self.conn.recv()
        result["cold_import_s"] = cold
        return result

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.conn.send(None)
            self.process.join(30)
        self.kill()


def _count_parent_calls(counter: Counter, enabled: list[bool]) -> None:
    from botocore.client import BaseClient

    original = BaseClient._make_api_call

    def counted(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        if enabled[0]:
            counter[f"{self.meta.service_model.service_name}:{operation_name}"] += 1
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = counted  # type: ignore[method-assign]


class ScaleRun:
    """The cloud, the replay and the function containers of one scale; ``run_pass`` runs the pipeline once."""

    def __init__(self, scale: Scale, work: Path) -> None:
        from localrun.cloud import LocalCloud, apply_environment
        from localrun.replay import ReplayServer
        from localrun.runner import Runner

        self.scale = scale
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.moto = MotoProcess(work / "moto.log")
        os.environ["AWS_ENDPOINT_URL"] = self.moto.endpoint
        self.cloud = LocalCloud(self.moto.endpoint).create()
        apply_environment(self.cloud.environment())
        self.large = LargeDataset(scale.large_rows)
        self.replay = ReplayServer(scale.replay, hooks=[self.large]).start()
        self.pools: dict[str, queue.Queue[Container]] = {}
        self.containers: list[Container] = []
        self.invocations: list[Invocation] = []
        self.polling: Counter = Counter()
        self._counting = [False]
        self._lock = threading.Lock()
        _count_parent_calls(self.polling, self._counting)
        self.runner = Runner(self.cloud)  # its mappings, queue reads and stats; deliveries are ConcurrentDrain's

    def _spec(self, logical_id: str, slot: int) -> dict[str, Any]:
        decl = self.cloud.functions[logical_id]
        environment = {
            **self.cloud.environment(),
            **self.cloud.function_environment(logical_id),
            **self.replay.environment(),
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_METRICS_NAMESPACE": "OpenDataPipeline",
            "STAGE": "local",
        }
        return {
            "name": decl.name,
            "handler": decl.handler,
            "code_dir": str((paths.ROOT / decl.code_uri).resolve()),
            "memory": decl.memory,
            "timeout": decl.timeout,
            "environment": {k: str(v) for k, v in environment.items()},
            "catalog": str(self.scale.catalog),
            "log_path": str(self.work / f"{decl.name}-{slot}.log"),
        }

    def _pool(self, logical_id: str) -> queue.Queue[Container]:
        """The function's containers: as many as its event source runs at once (Lambda's concurrency)."""
        with self._lock:
            if logical_id not in self.pools:
                pool: queue.Queue[Container] = queue.Queue()
                for slot in range(CONCURRENCY.get(logical_id, 1)):
                    container = Container(self._spec(logical_id, slot))
                    pool.put(container)
                    self.containers.append(container)
                self.pools[logical_id] = pool
            return self.pools[logical_id]

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        """One invocation in a free container of the function; raises when it crashed or timed out."""
        pool = self._pool(logical_id)
        container = pool.get()
        try:
            result = container.invoke(event)  # the function's own AWS calls are counted in its process
        finally:
            pool.put(container)
        invocation = Invocation(
            function=logical_id,
            records=len(event.get("Records", [])) if isinstance(event, dict) else 0,
            wall_s=result.get("wall_s", 0.0),
            cpu_s=result.get("cpu_s", 0.0),
            peak_rss_mb=result.get("peak_rss_mb", 0.0),
            remaining_ms=result.get("remaining_ms", 0),
            calls=result.get("calls", {}),
            sns_topics=result.get("sns_topics", {}),
            cold_import_s=result.get("cold_import_s", 0.0),
            error=result.get("error"),
            timed_out=bool(result.get("timed_out")),
        )
        with self._lock:
            self.invocations.append(invocation)
        if invocation.timed_out:
            raise RuntimeError(f"{logical_id}: Task timed out after {container.spec['timeout']} s")
        if invocation.error:
            raise RuntimeError(f"{logical_id} failed: {invocation.error.splitlines()[-1]}")
        return result["response"]

    def run_pass(self, label: str) -> PassResult:
        """The scheduled run: scheduler, every queue drained, the notifier settling the run."""
        from localrun.runner import scheduled_event

        self.invocations = []
        self.polling.clear()
        self.large.pages = 0
        self.runner.stats.clear()
        started = time.monotonic()
        self._counting[0] = True  # from here, the parent's SQS calls stand for the event source mappings'
        try:
            scheduled = self.invoke("SchedulerFunction", scheduled_event())
            run_id = scheduled["run_id"]
            ConcurrentDrain(self).run()
            self.invoke("NotifierFunction", {"action": "settle", "run_id": run_id})
        finally:
            self._counting[0] = False
        result = PassResult(label=label, run_id=run_id, elapsed_s=time.monotonic() - started)
        result.invocations = list(self.invocations)
        result.polling = Counter(self.polling)
        result.received = {logical: s.received for logical, s in self.runner.stats.items()}
        result.dead_letters = {q: len(m) for q, m in self.runner.dead_letters().items()}
        result.large_pages = self.large.pages
        return result

    def lake_objects(self) -> int:
        s3, bucket = self.cloud.client("s3"), self.cloud.ref("LakeBucket")
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sum(len(p.get("Contents", [])) for p in pages)

    def large_dataset_landing(self) -> dict[str, Any]:
        """The large dataset's newest landing manifest: its proof (row counts, ids) and its parts, as landed."""
        s3, bucket = self.cloud.client("s3"), self.cloud.ref("LakeBucket")
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"landing/socrata/{LARGE_DATASET}/")
        manifests = sorted(
            o["Key"] for p in pages for o in p.get("Contents", []) if o["Key"].endswith(".manifest.json")
        )
        if not manifests:
            return {}
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifests[-1])["Body"].read())
        data = [part for part in manifest["parts"] if part.get("role") == "data"]
        return {
            "proof": manifest.get("proof", {}),
            "data_parts": len(data),
            "records": sum(part.get("records") or 0 for part in data),
            "landed_mb": round(sum(part["bytes"] for part in data) / 1e6, 1),
        }

    def close(self) -> None:
        for container in self.containers:
            container.stop()
        self.replay.stop()
        self.moto.stop()


class ConcurrentDrain:
    """Delivers each queue as its event source mapping would: up to the function's concurrency batches at once.

    Stages run in pipeline order (every queue before the modeler's is empty when the modeler runs, as its 60 s
    batching window makes it on AWS); within a stage, batches overlap. A failed record is made visible again at
    once (the local runtime's deviation: no waiting out the visibility timeout).
    """

    def __init__(self, run: ScaleRun) -> None:
        self.scale_run = run
        self.runner = run.runner
        self.sqs = run.cloud.client("sqs")
        self.lock = threading.Lock()

    def run(self) -> None:
        while True:
            for queue_name, fn, source in self.runner._mappings:
                if self._drain(queue_name, fn, source):
                    break  # a stage ran: start again from the head of the pipeline
            else:
                return

    def _drain(self, queue_name: str, fn: Any, source: Any) -> bool:
        limit = CONCURRENCY.get(fn.logical_id, 1)
        delivered = False
        with ThreadPoolExecutor(max_workers=limit) as pool:
            running: set[Any] = set()
            while True:
                while len(running) < limit:
                    messages = self.runner._receive(queue_name, source.batch_size)
                    if not messages:
                        break
                    running.add(pool.submit(self._deliver, queue_name, fn, source, messages))
                    delivered = True
                if not running:
                    return delivered
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()

    def _deliver(self, queue_name: str, fn: Any, source: Any, messages: list[dict[str, Any]]) -> None:
        """One batch, as ``Runner.deliver_batch`` delivers it (partial batch failures, crashed batches)."""
        from localrun.runner import StageStats, sqs_lambda_record

        cloud = self.scale_run.cloud
        url, arn = cloud.queue_urls[queue_name], cloud.arn(queue_name)
        event = {"Records": [sqs_lambda_record(m, arn) for m in messages]}
        try:
            response = self.scale_run.invoke(fn.logical_id, event) or {}
            failures = response.get("batchItemFailures", []) if source.report_batch_item_failures else []
            failed = {f["itemIdentifier"] for f in failures}
            crashed = False
        except Exception:  # noqa: BLE001 - a crashed or timed-out invocation fails its whole batch, as in Lambda
            failed, crashed = {m["MessageId"] for m in messages}, True
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
            ]
            self.sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        for m in messages:
            if m["MessageId"] in failed:
                self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        with self.lock:
            stats = self.runner.stats.setdefault(fn.logical_id, StageStats(function=fn.name))
            stats.invocations += 1
            stats.received += len(messages)
            stats.succeeded += len(done)
            stats.failed += len(failed)
            stats.crashed_batches += int(crashed)
