"""`make smoke`'s checks against the local stack on moto, in a process of its own (the handlers read their settings
at import): python -m tests.integration.smoke_on_moto OUT.json

The deployed pieces are stood in for at their boundaries only: the scheduler is invoked in-process and the queues
are drained by the local runner (moto cannot run Lambda code), and Athena's answer is read from the lake's
population_stats report (moto does not run queries). Everything else is the local stack's moto resources.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from localrun.cli import DEFAULT_REPLAY, LOCAL_PARAMETERS, _sources
from localrun.cloud import LocalCloud, MotoServer
from localrun.runner import Runner
from localrun.template import ROOT
from ops.smoke import Clients, run_smoke, verdict


class LocalScheduler:
    """The scheduler invoked in-process, then the pipeline drained and the run settled, as `make run` does."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = self.runner.invoke("SchedulerFunction", request)
        self.runner.drain()
        self.runner.invoke("NotifierFunction", {"action": "settle", "run_id": answer["run_id"]})
        return answer


class LakeAthena:
    """moto's Athena for the workgroup's named queries; the query's answer is the report it reads, from the lake."""

    def __init__(self, athena: Any, s3: Any, bucket: str) -> None:
        self.athena, self.s3, self.bucket = athena, s3, bucket
        self.queries: dict[str, str] = {}

    def list_named_queries(self, **kwargs: Any) -> dict[str, Any]:
        return self.athena.list_named_queries(**kwargs)

    def get_named_query(self, **kwargs: Any) -> dict[str, Any]:
        return self.athena.get_named_query(**kwargs)

    def start_query_execution(self, QueryString: str, **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's name
        execution = str(uuid.uuid4())
        self.queries[execution] = QueryString
        return {"QueryExecutionId": execution}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:  # noqa: N803
        return {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}}

    def get_query_results(self, QueryExecutionId: str) -> dict[str, Any]:  # noqa: N803
        assert "FROM population_stats" in self.queries[QueryExecutionId]
        keys = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="marts/reports/population_stats/")["Contents"]
        body = self.s3.get_object(Bucket=self.bucket, Key=keys[0]["Key"])["Body"].read()
        table = pq.read_table(io.BytesIO(body))
        header = {"Data": [{"VarCharValue": name} for name in table.column_names]}
        rows = [{"Data": [{"VarCharValue": str(v)} for v in row.values()]} for row in table.to_pylist()]
        return {"ResultSet": {"Rows": [header, *rows]}}


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    for path in (ROOT / "shared", ROOT):  # as `python -m localrun` does: the shared layer is importable
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    server = MotoServer().start()
    replay = None
    try:
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint
        cloud = LocalCloud(server.endpoint, parameter_overrides=LOCAL_PARAMETERS).create()
        replay = _sources(cloud, argparse.Namespace(live=False, replay_dir=DEFAULT_REPLAY, bls_key_env="NO_SUCH_VAR"))
        outputs = {}
        for key, output in cloud.template["Outputs"].items():
            try:
                outputs[key] = str(cloud.resolver.resolve(output["Value"]))
            except KeyError:
                continue  # resources the local runtime does not create (the dashboard)
        runner = Runner(cloud, log_stream=io.StringIO())
        clients = Clients(
            s3=cloud.client("s3"),
            sqs=cloud.client("sqs"),
            dynamodb=cloud.client("dynamodb"),
            athena=LakeAthena(cloud.client("athena"), cloud.client("s3"), outputs["LakeBucketName"]),
        )
        checks = run_smoke(outputs, LocalScheduler(runner), clients, timeout_seconds=60, sleep=lambda _s: None)
        out.write_text(
            json.dumps({"checks": [vars(c) for c in checks], "verdict": verdict(checks), "outputs": outputs})
        )
        return 0
    finally:
        if replay is not None:
            replay.stop()
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
