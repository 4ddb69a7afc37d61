"""`make smoke` on moto: the verdict over the local stack, and each check failing on what it exists to catch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from moto import mock_aws

from ops.smoke import Check, Clients, check_athena, check_dlqs, check_reports, run_smoke, verdict, wait_for_marts
from tests.aws_builders import clients, create_state_table

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_the_smoke_passes_on_the_local_stack(tmp_path):
    out = tmp_path / "smoke.json"
    subprocess.run(
        [sys.executable, "-m", "tests.integration.smoke_on_moto", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(out.read_text())
    checks = {c["name"]: c for c in result["checks"]}
    assert list(checks) == ["scheduler", "marts.built", "reports", "athena", "dlqs"]
    assert all(c["ok"] for c in checks.values()), result["checks"]
    assert checks["scheduler"]["detail"].endswith(": 6 extract requests sent")
    assert checks["marts.built"]["detail"].endswith("marts rebuilt")
    assert checks["reports"]["detail"].startswith("3 reports in s3://opendata-dev-123456789012-")
    assert checks["athena"]["detail"] == "odp-local-dev-population-stats returned 1 row(s)"
    assert checks["dlqs"]["detail"] == "all 5 empty"
    assert result["verdict"] == "smoke: PASS"


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        names = ("s3", "sqs", "dynamodb")
        yield dict(zip(names, clients(*names, region_name="us-east-1"), strict=True))


def test_a_dead_letter_fails_the_smoke(aws):
    urls = {f"{n}DLQUrl": aws["sqs"].create_queue(QueueName=n)["QueueUrl"] for n in ("Extract", "Model")}
    assert check_dlqs(aws["sqs"], urls) == Check("dlqs", True, "all 2 empty")
    aws["sqs"].send_message(QueueUrl=urls["ModelDLQUrl"], MessageBody="{}")
    assert check_dlqs(aws["sqs"], urls) == Check("dlqs", False, "not empty: ModelDLQ=1 (docs/operations.md#redrive)")


def test_missing_reports_fail_the_smoke(aws):
    aws["s3"].create_bucket(Bucket="lake")
    aws["s3"].put_object(Bucket="lake", Key="marts/reports/bls_best_year/part-1.parquet", Body=b"PAR1")
    check = check_reports(aws["s3"], "lake")
    assert check == Check(
        "reports", False, "no report object for population_stats, series_population in s3://lake/marts/reports/"
    )


def _ledger(ddb):
    create_state_table(ddb, "state")


def test_no_marts_built_in_time_fails_after_the_deadline(aws):
    _ledger(aws["dynamodb"])
    aws["dynamodb"].put_item(TableName="state", Item={"pk": {"S": "RUN#r1"}, "sk": {"S": "EVENT#dataset.staged#x"}})
    now = [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    check = wait_for_marts(aws["dynamodb"], "state", "r1", deadline=60, sleep=sleep, clock=lambda: now[0])
    assert check == Check("marts.built", False, "none for run r1 in time (events seen: dataset.staged)")
    assert sleeps == [15.0] * 4


def test_a_run_with_nothing_new_upstream_passes_without_a_rebuild(aws):
    _ledger(aws["dynamodb"])
    for ref in ("bls_api/LNS14000000", "datausa/population"):
        aws["dynamodb"].put_item(
            TableName="state", Item={"pk": {"S": "RUN#r2"}, "sk": {"S": f"EVENT#dataset.unchanged#{ref}"}}
        )
    check = wait_for_marts(aws["dynamodb"], "state", "r2", 60, lambda s: None, lambda: 0.0, expected=2)
    assert check == Check("marts.built", True, "run r2: all 2 datasets unchanged, no rebuild needed")
    # one of three still out: keep waiting, then fail at the deadline
    late = wait_for_marts(aws["dynamodb"], "state", "r2", 0, lambda s: None, lambda: 1.0, expected=3)
    assert late.ok is False


def test_a_modeler_failure_fails_at_once(aws):
    _ledger(aws["dynamodb"])
    aws["dynamodb"].put_item(
        TableName="state", Item={"pk": {"S": "RUN#r1"}, "sk": {"S": "EVENT#stage.failed#modeler#-#-"}}
    )
    check = wait_for_marts(aws["dynamodb"], "state", "r1", deadline=60, sleep=lambda s: None, clock=lambda: 0.0)
    assert check == Check("marts.built", False, "the modeler failed in run r1")


class Athena:
    def __init__(self, state: str, rows: int) -> None:
        self.state, self.rows = state, rows

    def list_named_queries(self, WorkGroup):  # noqa: N803
        return {"NamedQueryIds": ["a", "b"]}

    def get_named_query(self, NamedQueryId):  # noqa: N803
        name = {"a": "s-dev-bls-best-year", "b": "s-dev-population-stats"}[NamedQueryId]
        return {"NamedQuery": {"Name": name, "QueryString": "SELECT 1"}}

    def start_query_execution(self, **kwargs):
        return {"QueryExecutionId": "q"}

    def get_query_execution(self, QueryExecutionId):  # noqa: N803
        return {"QueryExecution": {"Status": {"State": self.state, "StateChangeReason": "TABLE_NOT_FOUND"}}}

    def get_query_results(self, QueryExecutionId):  # noqa: N803
        return {"ResultSet": {"Rows": [{"Data": [{"VarCharValue": "h"}]}] * (1 + self.rows)}}


def test_an_athena_query_without_rows_or_that_fails_fails_the_smoke():
    assert check_athena(Athena("SUCCEEDED", 2), "wg", "db", deadline=10, clock=lambda: 0.0).ok
    assert check_athena(Athena("SUCCEEDED", 0), "wg", "db", deadline=10, clock=lambda: 0.0) == Check(
        "athena", False, "s-dev-population-stats returned no rows"
    )
    assert check_athena(Athena("FAILED", 0), "wg", "db", deadline=10, clock=lambda: 0.0) == Check(
        "athena", False, "s-dev-population-stats: FAILED (TABLE_NOT_FOUND)"
    )


def test_a_scheduler_that_cannot_start_is_the_only_verdict():
    class Broken:
        def start(self, request):
            raise RuntimeError("the scheduler failed: {'errorType': 'CatalogError'}")

    checks = run_smoke({}, Broken(), Clients(None, None, None, None), timeout_seconds=1)
    assert checks == [
        Check("scheduler", False, "could not start the run: the scheduler failed: {'errorType': 'CatalogError'}")
    ]
    assert verdict(checks) == "smoke: FAIL (scheduler)"
