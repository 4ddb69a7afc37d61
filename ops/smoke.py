"""`make smoke STACK=... REGION=...`: after a deploy, a small real run through the deployed stack, checked end to end.

    python -m ops.smoke --stack NAME [--region REGION] [--timeout-minutes 20]

It invokes the scheduler with a small manual run (a few BLS API series, the BLS bulk `pr` survey, DataUSA
population and one small Socrata dataset), waits for the modeler's ``marts.built`` of that run (the notifier's run
ledger in the state table records it), checks the report objects in the lake, runs the population-stats Athena
named query and checks that it returns rows, checks that every DLQ is empty, and prints a verdict. It exits 1
unless every check passed.

Only a real account proves a deploy: the tests run this against the local stack on moto, with the scheduler
invoked in-process and Athena's answer faked (moto does not run queries).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

SMOKE_REQUEST: dict[str, Any] = {
    "trigger": "manual",
    "datasets": ["LNS14000000", "CES0000000001", "PRS30006032", "pr", "population", "utrz-jf79"],
}
REPORTS = ("population_stats", "bls_best_year", "series_population")
NAMED_QUERY_SUFFIX = "-population-stats"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name:<12} {self.detail}"


class Scheduler(Protocol):
    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        """Invoke the scheduler; returns its answer (``run_id``, ``sent``)."""


class LambdaScheduler:
    """The deployed SchedulerFunction, invoked synchronously."""

    def __init__(self, lam: Any, function_name: str) -> None:
        self.lam, self.function_name = lam, function_name

    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        response = self.lam.invoke(FunctionName=self.function_name, Payload=json.dumps(request).encode())
        payload = json.loads(response["Payload"].read() or b"{}")
        if response.get("FunctionError"):
            raise RuntimeError(f"the scheduler failed: {payload}")
        return payload


@dataclass
class Clients:
    s3: Any
    sqs: Any
    dynamodb: Any
    athena: Any


def stack_outputs(cfn: Any, stack: str) -> dict[str, str]:
    """The stack's outputs by key."""
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def wait_for_marts(
    ddb: Any,
    table: str,
    run_id: str,
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll_seconds: float = 15.0,
    expected: int | None = None,
) -> Check:
    """Poll the run ledger for the run's ``marts.built`` (or a modeler failure) until the deadline.

    A run in which every one of the ``expected`` datasets was unchanged upstream stages nothing, so no rebuild
    follows: that passes too (the marts from an earlier run stand), and says so.
    """
    while True:
        items = ddb.query(
            TableName=table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
            ExpressionAttributeValues={":pk": {"S": f"RUN#{run_id}"}, ":sk": {"S": "EVENT#"}},
        )["Items"]
        kinds = [item["sk"]["S"].removeprefix("EVENT#") for item in items]
        if any(k.startswith("stage.failed#modeler") for k in kinds):
            return Check("marts.built", False, f"the modeler failed in run {run_id}")
        built = [item for item in items if item["sk"]["S"].startswith("EVENT#marts.built")]
        if built:
            event = json.loads(built[-1]["event"]["S"])
            return Check("marts.built", True, f"run {run_id}: {len(event.get('marts', []))} marts rebuilt")
        unchanged = [k for k in kinds if k.startswith("dataset.unchanged#")]
        if expected and len(unchanged) >= expected and not any(k.startswith("dataset.staged#") for k in kinds):
            return Check("marts.built", True, f"run {run_id}: all {expected} datasets unchanged, no rebuild needed")
        if clock() >= deadline:
            seen = sorted({k.split("#")[0] for k in kinds})
            return Check("marts.built", False, f"none for run {run_id} in time (events seen: {', '.join(seen)})")
        sleep(poll_seconds)


def check_reports(s3: Any, bucket: str) -> Check:
    missing, found = [], 0
    for name in REPORTS:
        objects = s3.list_objects_v2(Bucket=bucket, Prefix=f"marts/reports/{name}/").get("Contents", [])
        parquet = [o for o in objects if o["Key"].endswith(".parquet") and o["Size"] > 0]
        if parquet:
            found += 1
        else:
            missing.append(name)
    if missing:
        return Check("reports", False, f"no report object for {', '.join(missing)} in s3://{bucket}/marts/reports/")
    return Check("reports", True, f"{found} reports in s3://{bucket}/marts/reports/")


def check_athena(
    athena: Any,
    workgroup: str,
    database: str,
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Check:
    """Run the population-stats named query of the stack's workgroup; it must return at least one row."""
    ids = athena.list_named_queries(WorkGroup=workgroup).get("NamedQueryIds", [])
    queries = [athena.get_named_query(NamedQueryId=i)["NamedQuery"] for i in ids]
    chosen = [q for q in queries if q["Name"].endswith(NAMED_QUERY_SUFFIX)]
    if not chosen:
        return Check("athena", False, f"no named query *{NAMED_QUERY_SUFFIX} in workgroup {workgroup}")
    query = chosen[0]
    execution = athena.start_query_execution(
        QueryString=query["QueryString"], QueryExecutionContext={"Database": database}, WorkGroup=workgroup
    )["QueryExecutionId"]
    while True:
        status = athena.get_query_execution(QueryExecutionId=execution)["QueryExecution"]["Status"]
        if status["State"] == "SUCCEEDED":
            break
        if status["State"] in {"FAILED", "CANCELLED"} or clock() >= deadline:
            reason = status.get("StateChangeReason", "timed out")
            return Check("athena", False, f"{query['Name']}: {status['State']} ({reason})")
        sleep(2.0)
    rows = athena.get_query_results(QueryExecutionId=execution)["ResultSet"]["Rows"][1:]  # the first is the header
    if not rows:
        return Check("athena", False, f"{query['Name']} returned no rows")
    return Check("athena", True, f"{query['Name']} returned {len(rows)} row(s)")


def check_dlqs(sqs: Any, outputs: dict[str, str]) -> Check:
    full = []
    dlqs = sorted(k for k in outputs if k.endswith("DLQUrl"))
    for key in dlqs:
        attributes = sqs.get_queue_attributes(
            QueueUrl=outputs[key],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        count = int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
        if count:
            full.append(f"{key.removesuffix('Url')}={count}")
    if full:
        return Check("dlqs", False, f"not empty: {', '.join(full)} (docs/operations.md#redrive)")
    return Check("dlqs", True, f"all {len(dlqs)} empty")


def run_smoke(
    outputs: dict[str, str],
    scheduler: Scheduler,
    clients: Clients,
    timeout_seconds: float,
    request: dict[str, Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[Check]:
    """Every check, in order; a check that cannot run (an AWS error) fails with the error as its detail."""
    deadline = clock() + timeout_seconds
    checks = []
    try:
        started = scheduler.start(request or SMOKE_REQUEST)
        run_id = started["run_id"]
        checks.append(Check("scheduler", True, f"run {run_id}: {started.get('sent')} extract requests sent"))
    except (ClientError, BotoCoreError, RuntimeError, KeyError) as exc:
        return [Check("scheduler", False, f"could not start the run: {exc}")]
    steps: list[tuple[str, Callable[[], Check]]] = [
        (
            "marts.built",
            lambda: wait_for_marts(
                clients.dynamodb,
                outputs["StateTableName"],
                run_id,
                deadline,
                sleep,
                clock,
                expected=started.get("sent"),
            ),
        ),
        ("reports", lambda: check_reports(clients.s3, outputs["LakeBucketName"])),
        (
            "athena",
            lambda: check_athena(
                clients.athena, outputs["AthenaWorkGroupName"], outputs["GlueDatabaseName"], deadline, sleep, clock
            ),
        ),
        ("dlqs", lambda: check_dlqs(clients.sqs, outputs)),
    ]
    for name, step in steps:
        try:
            checks.append(step())
        except (ClientError, BotoCoreError) as exc:
            checks.append(Check(name, False, f"{type(exc).__name__}: {exc}"))
    return checks


def verdict(checks: list[Check]) -> str:
    failed = [c.name for c in checks if not c.ok]
    return f"smoke: FAIL ({', '.join(failed)})" if failed else "smoke: PASS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--timeout-minutes", type=float, default=20.0)
    args = parser.parse_args(argv)
    import boto3

    session = boto3.session.Session(region_name=args.region)
    outputs = stack_outputs(session.client("cloudformation"), args.stack)
    clients = Clients(*(session.client(s) for s in ("s3", "sqs", "dynamodb", "athena")))
    scheduler = LambdaScheduler(session.client("lambda"), outputs["SchedulerFunctionName"])
    print(f"smoke: stack {args.stack} in {args.region}: {json.dumps(SMOKE_REQUEST)}")
    checks = run_smoke(outputs, scheduler, clients, args.timeout_minutes * 60)
    for check in checks:
        print(check.line())
    print(verdict(checks))
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
