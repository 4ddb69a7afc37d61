"""`make run`: the whole pipeline on one machine, against moto's server, offline by default.

python -m localrun [--live | --replay-dir DIR] [--lake-dir DIR] [--source S ...] [--dataset D ...]
                   [--backfill START[:END]] [--bls-key-env VAR] [--faults PLAN.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localrun.lakesync import LOCAL_DIR, LocalLakeError, recover_lake, restore_bucket, restore_table, save_lake
from localrun.redrive import redrive_local, restore_dead_letters, restore_pending, save_dead_letters, save_pending
from localrun.template import ROOT

DEFAULT_REPLAY = ROOT / "data" / "replay"
STATE_FILE = "state-table.jsonl"
LOCAL_PARAMETERS = {
    "Stage": "dev",
    "ContactEmail": "local-run@example.org",
    "AlertEmail": "local-inbox@example.org",  # becomes a local inbox queue, printed at the end
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m localrun", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--live", action="store_true", help="call the real source APIs instead of the replay")
    where.add_argument(
        "--replay-dir",
        type=Path,
        default=DEFAULT_REPLAY,
        help=f"replay a recorded snapshot folder (default: {DEFAULT_REPLAY.relative_to(ROOT)})",
    )
    parser.add_argument("--lake-dir", type=Path, default=ROOT / ".lake", help="local lake folder (default: .lake)")
    parser.add_argument(
        "--source",
        action="append",
        dest="sources",
        default=None,
        choices=["bls_api", "bls_bulk", "datausa", "socrata"],
        help="only this source (repeatable)",
    )
    parser.add_argument(
        "--dataset", action="append", dest="datasets", default=None, help="only this series or dataset id (repeatable)"
    )
    parser.add_argument("--backfill", metavar="START[:END]", help="backfill BLS API years, e.g. 2005:2024")
    parser.add_argument(
        "--bls-key-env",
        metavar="VAR",
        default="BLS_API_KEY",
        help="environment variable holding a BLS API key to store in local SSM (default: BLS_API_KEY)",
    )
    parser.add_argument("--verbose", action="store_true", help="print each batch as it is delivered")
    parser.add_argument(
        "--redrive",
        metavar="DLQ",
        choices=["ExtractDLQ", "TransformDLQ", "ModelDLQ", "NotifyDLQ"],
        help="start no run: move this DLQ's messages (kept from earlier runs) back to their queue and process them",
    )
    parser.add_argument(
        "--faults",
        type=Path,
        metavar="PLAN",
        help="inject the faults a JSON plan scripts (localrun.faults): source faults, duplicate or poison "
        "deliveries, S3 errors and crashes",
    )
    return parser.parse_args(argv)


def schedule_event(args: argparse.Namespace) -> dict[str, Any]:
    """A scheduled event by default; a manual or backfill request when a filter or window is given."""
    from localrun.runner import scheduled_event

    if not (args.sources or args.datasets or args.backfill):
        return scheduled_event()
    request: dict[str, Any] = {"trigger": "manual"}
    if args.sources:
        request["sources"] = args.sources
    if args.datasets:
        request["datasets"] = args.datasets
    if args.backfill:
        start, _, end = args.backfill.partition(":")
        request.update(trigger="backfill", start_year=int(start))
        if end:
            request["end_year"] = int(end)
    return request


def _say(text: str = "") -> None:
    print(text, flush=True)


def run(args: argparse.Namespace) -> int:
    """One local run: restore the lake, run the pipeline through the real handlers, report, save the lake."""
    started = time.monotonic()
    from localrun.cloud import MotoServer
    from localrun.runner import Runner

    lake_dir: Path = args.lake_dir.resolve()
    local_dir = lake_dir / LOCAL_DIR
    check_writable(lake_dir)
    recovered = recover_lake(lake_dir)
    if recovered:
        _say(f"lake {lake_dir}: {recovered}")
    server = MotoServer().start()
    replay = None
    try:
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint
        cloud = _restore(server, lake_dir, local_dir)
        replay = _sources(cloud, args)
        faults = None
        if args.faults is not None:
            from localrun.faults.plan import FaultPlan

            faults = FaultPlan.load(args.faults)
            _say(f"faults: {faults.name} ({args.faults})")
        log_path = local_dir / "logs" / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.jsonl"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w") as log_stream:
            runner = Runner(cloud, log_stream=log_stream, progress=_say if args.verbose else None)
            if faults is not None:
                faults.install(runner, replay)
            run_id = _execute(runner, args)
        waiting = _report_stages(runner, cloud, local_dir)
        if replay is not None:
            _say(f"\n== replay server: {replay.request_count()} requests served")
        if faults is not None:
            _say(f"\n== faults ({faults.name})" + "".join(f"\n   {line}" for line in faults.lines()))
        synced, items = save_lake(
            lake_dir,
            cloud.client("s3"),
            cloud.ref("LakeBucket"),
            (cloud.client("dynamodb"), cloud.ref("StateTable"), local_dir / STATE_FILE),
        )
        _say(
            f"\n== lake {lake_dir}: {synced.written} files written, {synced.unchanged} unchanged, "
            f"{synced.deleted} deleted; {items} state items saved"
        )
        _print_reports(lake_dir)
        record = {
            "run_id": run_id,
            "seconds": round(time.monotonic() - started, 2),
            "stages": {k: vars(v) for k, v in runner.stats.items()},
            "waiting": waiting,
            "lake": vars(synced),
            "log": str(log_path),
            "replay_requests": dict(replay.counts) if replay is not None else None,
            "faults": faults.report() if faults is not None else None,
        }
        runs_dir = local_dir / "runs"
        runs_dir.mkdir(parents=True, exist_ok=True)
        (runs_dir / f"{run_id}.json").write_text(json.dumps(record, indent=1, default=str))
        _say(f"\nrun {run_id} finished in {record['seconds']}s; logs: {log_path}")
        return 0
    finally:
        if replay is not None:
            replay.stop()
        server.stop()


class RunRefused(RuntimeError):
    """The scheduler refused the run's request (an unknown dataset, an empty selection, ...): nothing started."""


def check_writable(lake_dir: Path) -> None:
    """The lake folder (created if absent) must take new files, or the run would be lost at its end.

    Raises
    ------
    LocalLakeError
        Naming the folder, before anything starts.
    """
    probe = lake_dir / LOCAL_DIR / ".write-probe"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise LocalLakeError(
            f"the lake folder {lake_dir} is not writable ({reason}): choose another with --lake-dir"
        ) from exc


def _restore(server: Any, lake_dir: Path, local_dir: Path) -> Any:
    """Create the template's resources, with the lake, the state table and the kept messages of earlier runs."""
    from localrun.cloud import LocalCloud

    restored: dict[str, int] = {}

    def preload(cloud: Any) -> bool:
        restored["objects"] = restore_bucket(lake_dir, cloud.client("s3"), cloud.ref("LakeBucket"))
        restored["items"] = restore_table(local_dir / STATE_FILE, cloud.client("dynamodb"), cloud.ref("StateTable"))
        return bool(restored["objects"] or restored["items"])  # an earlier run's lake: the stack existed already

    cloud = LocalCloud(server.endpoint, parameter_overrides=LOCAL_PARAMETERS).create(preload=preload)
    _say(
        f"local AWS (moto) on {server.endpoint}; lake {lake_dir} restored: {restored['objects']} objects, "
        f"{restored['items']} state items"
    )
    kept = restore_dead_letters(cloud, local_dir)  # DLQs keep their messages between runs, as on AWS
    if kept:
        _say("dead letters kept from earlier runs: " + ", ".join(f"{q}={n}" for q, n in kept.items()))
    pending = restore_pending(cloud, local_dir)  # messages an earlier run left waiting (e.g. deferred)
    if pending:
        _say(
            "messages left waiting by the last run, back in their queues: "
            + ", ".join(f"{q}={n}" for q, n in pending.items())
        )
    return cloud


def _sources(cloud: Any, args: argparse.Namespace) -> Any:
    """Give every function its template environment, pointed at the replay server unless --live."""
    env = dict(cloud.environment())
    for logical in cloud.functions:
        env.update({k: v for k, v in cloud.function_environment(logical).items() if k != "POWERTOOLS_SERVICE_NAME"})
    replay = None
    if args.live:
        _say("sources: LIVE public APIs")
    else:
        from localrun.replay import ReplayServer

        replay = ReplayServer(args.replay_dir).start()
        env.update(replay.environment())
        _say(f"sources: replay of {args.replay_dir} on {replay.base_url}")
    os.environ.update(env)
    bls_key = os.environ.get(args.bls_key_env)
    if bls_key:
        cloud.client("ssm").put_parameter(
            Name=env["BLS_API_KEY_PARAM"], Value=bls_key, Type="SecureString", Overwrite=True
        )
        _say("BLS API key: stored in local SSM (SecureString)")
    return replay


def _execute(runner: Any, args: argparse.Namespace) -> str:
    """Start the run (scheduler, or a redrive), drain the pipeline, and let the notifier settle it."""
    if args.redrive:
        moved = redrive_local(runner.cloud, args.redrive)
        _say(f"\n== redrive: {moved.moved} message(s) moved from {moved.dlq} back to {moved.target}")
        run_id = f"redrive-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    else:
        event = schedule_event(args)
        _say(f"\n== scheduler: {'scheduled event' if 'detail-type' in event else json.dumps(event)}")
        try:
            scheduled = runner.invoke("SchedulerFunction", event)
        except ValueError as exc:  # the scheduler refused the request (BadScheduleRequest): nothing was sent
            raise RunRefused(str(exc)) from exc
        run_id = scheduled["run_id"]
        _say(f"   run {run_id}: {scheduled['sent']} extract requests sent")
    runner.drain()
    if runner.handler("NotifierFunction") is not None:
        # Close the run (every open run, after a redrive): a run with a dead-lettered request still settles
        # into its summary; a run that settled by itself is not told twice.
        settle = {"action": "settle"} if args.redrive else {"action": "settle", "run_id": run_id}
        runner.invoke("NotifierFunction", settle)
    return run_id


def _report_stages(runner: Any, cloud: Any, local_dir: Path) -> dict[str, int]:
    """Print each stage, what is left waiting (kept for the next run), the DLQs and the notifications."""
    _say("\n== stages")
    for logical in runner.stats:
        _say("   " + runner.stage_line(logical))
    for logical, decl in cloud.functions.items():
        if decl.sqs_events and runner.handler(logical) is None:
            _say(f"   {decl.name}: not built yet (no code in {decl.code_uri})")
    waiting = runner.waiting()
    if waiting:
        _say("   waiting in queues: " + ", ".join(f"{q}={n}" for q, n in waiting.items()))
    runner.release_deferred()  # a deferral outlives this moto: the next run picks the messages up, none dropped
    kept = save_pending(cloud, local_dir)
    if kept:
        _say("   kept for the next run: " + ", ".join(f"{q}={n}" for q, n in kept.items()))
    _print_dead_letters(runner.dead_letters())
    save_dead_letters(cloud, local_dir)
    _print_inboxes(cloud)
    return waiting


def _print_dead_letters(dead: dict[str, list[dict[str, Any]]]) -> None:
    if not dead:
        _say("   dead-letter queues: empty")
        return
    for queue, messages in dead.items():
        _say(f"   {queue}: {len(messages)} message(s)")
        for m in messages[:20]:
            reason = m.get("MessageAttributes", {}).get("failure_reason", {}).get("StringValue")
            _say(f"     - {_describe(m['Body'])}" + (f": {reason}" if reason else ""))


def _describe(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:120]
    if isinstance(data, dict) and "source" in data and "dataset" in data:
        return f"{data['source']}/{data['dataset']}"
    return body[:120]


def _print_inboxes(cloud: Any) -> None:
    sqs = cloud.client("sqs")
    for url in cloud.inboxes.values():
        messages = []
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not got:
                break
            messages.extend(got)
            sqs.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
            )
        if messages:
            _say(f"\n== notifications ({len(messages)}), as the alerts email would show them")
            for m in messages:
                _say(m["Body"].rstrip() + "\n")


def _print_reports(lake_dir: Path) -> None:
    try:
        from localrun.reports import print_reports
    except ModuleNotFoundError:
        return
    print_reports(lake_dir, _say)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for path in (ROOT / "shared", ROOT):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    try:
        return run(args)
    except (LocalLakeError, RunRefused) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
