"""The one way tests run the local runtime: ``python -m localrun`` in a fresh process (as ``make run`` does: every run
is a cold start), and the clean reference lakes faulted runs are compared with."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from localrun.faults.spec import PlanDocument
from tests.support.audit import LOCAL


def run_record(lake_dir: Path, run_id: str) -> dict[str, Any]:
    """The record ``python -m localrun`` writes for a run (stages, replay requests, faults)."""
    return json.loads((Path(lake_dir) / LOCAL / "runs" / f"{run_id}.json").read_text())


# ---------------------------------------------------------------------------------------------------------------
# Driving local runs, each in a fresh process (as ``make run`` does: every run is a cold start)
# ---------------------------------------------------------------------------------------------------------------

_FINISHED = re.compile(r"^run (\S+) finished in", re.M)
_STARTED = re.compile(r"^   run (\S+): \d+ extract requests sent$", re.M)


class LocalRunFailed(RuntimeError):
    """``python -m localrun`` exited with an error."""


@dataclass(frozen=True)
class LocalRun:
    lake_dir: Path
    args: tuple[str, ...]
    output: str
    run_id: str  # the run the scheduler started; for a redrive run, the runtime's own "redrive-..." id
    record_id: str
    seconds: float
    errors: str = ""  # what the run wrote to stderr

    @property
    def record(self) -> dict[str, Any]:
        return run_record(self.lake_dir, self.record_id)

    def stage(self, logical_id: str) -> dict[str, Any]:
        return self.record["stages"].get(logical_id, {})


def localrun_process(
    *args: str, env: dict[str, str] | None = None, timeout: float = 1200.0, module: str = "localrun"
) -> CompletedProcess:
    """``python -m localrun ARGS`` in a new process, from the repository's root, as ``make run`` runs it; its exit
    code, output and errors, whatever they are (a test of a refusal expects a failure). ``module``: an entry point
    that wraps the local runtime (``checks.iam_run`` records the handlers' AWS calls of the run).

    The child gets this process's environment without ``BLS_API_KEY`` (the replay's keyless limits, unless a test
    sets it in ``env``), plus ``env``.
    """
    from localrun.template import ROOT

    environment = {k: v for k, v in os.environ.items() if k != "BLS_API_KEY"} | (env or {})
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_local(
    lake_dir: Path,
    *args: str,
    plan: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 1200.0,
) -> LocalRun:
    """Run ``python -m localrun --lake-dir LAKE ARGS`` (with ``--faults`` when a plan is given) in a new process
    (``localrun_process``), which must finish a run.

    Raises
    ------
    LocalRunFailed
        When the run exits with an error (its output's tail is in the message).
    """
    lake_dir = Path(lake_dir)
    command = ["--lake-dir", str(lake_dir), *args]
    if plan is not None:
        PlanDocument.model_validate(plan)  # a wrong plan fails here, not in the child
        plans = lake_dir.parent / f"{lake_dir.name}-plans"
        plans.mkdir(parents=True, exist_ok=True)
        path = plans / f"{len(list(plans.iterdir())):02d}.json"
        path.write_text(json.dumps(plan, indent=1))
        command += ["--faults", str(path)]
    started = time.monotonic()
    done = localrun_process(*command, env=env, timeout=timeout)
    if done.returncode != 0:
        raise LocalRunFailed(
            f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    finished = _FINISHED.search(done.stdout)
    if finished is None:
        raise LocalRunFailed(f"{' '.join(command)} did not finish a run:\n{done.stdout[-3000:]}")
    started_run = _STARTED.search(done.stdout)
    record_id = finished.group(1)
    return LocalRun(
        lake_dir=lake_dir,
        args=tuple(args),
        output=done.stdout,
        run_id=started_run.group(1) if started_run else record_id,
        record_id=record_id,
        seconds=round(time.monotonic() - started, 1),
        errors=done.stderr,
    )


def session_root(tmp_path_factory: Any) -> Path:
    """The test session's own temporary folder, common to all its pytest-xdist workers (each worker's basetemp is
    ``<session>/popen-gwN``; without xdist the basetemp is the session's folder itself)."""
    base = Path(tmp_path_factory.getbasetemp())
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def held(lock_file: Path) -> Iterator[None]:
    """An exclusive lock on a file, across the threads and processes (xdist workers) of a session."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with _LOCKS_LOCK:
        thread_lock = _REFERENCE_LOCKS.setdefault(lock_file, threading.Lock())
    with thread_lock, lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


_REFERENCE_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def reference_lake(base_dir: Path, *args: str) -> Path:
    """The lake of a clean run over ``args``, made once per base folder and reused (by threads and by the xdist
    workers of a session, under ``session_root``).

    No fault is injected; the run only counts its S3 writes (``record_writes``), and its console output is kept in
    ``_local/clean-output.txt``, so tests can compare a faulted run's writes and messages with it.
    """
    name = "clean-" + (re.sub(r"[^A-Za-z0-9]+", "-", " ".join(args)).strip("-") or "all")
    lake = Path(base_dir) / name
    with held(Path(base_dir) / f".{name}.lock"):
        if not (lake / LOCAL / "clean").exists():
            import shutil

            shutil.rmtree(lake, ignore_errors=True)  # what an interrupted attempt left
            done = run_local(lake, *args, plan={"name": "clean (writes counted)", "record_writes": True})
            (lake / LOCAL / "clean-output.txt").write_text(done.output)
            (lake / LOCAL / "clean").write_text(done.run_id)
    return lake


def reference_run_id(lake: Path) -> str:
    """The run id of a lake made by ``reference_lake``."""
    return (Path(lake) / LOCAL / "clean").read_text().strip()


@dataclass(frozen=True)
class FullRun:
    lake_dir: Path
    output: str  # the console output, as ``make run`` prints it
    calls: Path  # every AWS call of the handlers, as ``checks.iam_run`` records them (JSON)


def full_run(tmp_path_factory: Any) -> FullRun:
    """The session's one full default local run (``make run`` over the bundled replay), with the handlers' AWS calls
    recorded: the IAM evaluation reads the calls, the report tests read the lake and the console output. Made once
    per session, whichever xdist worker asks first; the report tests then run a second run on its lake.

    Raises
    ------
    LocalRunFailed
        When the run exits with an error.
    """
    shared = session_root(tmp_path_factory) / "full-run"
    lake, calls, output = shared / "lake", shared / "calls.json", shared / "output.txt"
    with held(shared / "lock"):
        if not output.exists():
            done = localrun_process(str(calls), "--", "--lake-dir", str(lake), module="checks.iam_run")
            if done.returncode != 0:
                raise LocalRunFailed(
                    f"the full run exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
                )
            output.write_text(done.stdout)
    return FullRun(lake_dir=lake, output=output.read_text(), calls=calls)
