"""The fault layer itself (``localrun.faults``): each source fault as a client meets it over HTTP on 127.0.0.1,
scripted per endpoint and dataset, clearing after N attempts; plans refused when they cannot apply; S3 errors and
crashes injected through botocore on a moto client."""

from __future__ import annotations

import json
import time

import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import ValidationError

from localrun.cloud import MotoServer
from localrun.faults.aws import AwsFaults, SimulatedCrash
from localrun.faults.plan import FaultPlan
from localrun.replay import ReplayServer
from tests.aws_builders import clients
from tests.unit.extractor.support import REPLAY

pytestmark = pytest.mark.integration


def plan(*faults: dict) -> FaultPlan:
    return FaultPlan.from_dict({"source": list(faults)})


@pytest.fixture
def replay():
    with ReplayServer(REPLAY) as server:
        yield server


def faulted(replay: ReplayServer, *faults: dict) -> FaultPlan:
    fault_plan = plan(*faults)
    replay.add_hook(fault_plan.source)
    return fault_plan


def datausa(replay: ReplayServer, timeout: float | tuple[float, float] = 10) -> requests.Response:
    return requests.get(replay.environment()["DATAUSA_URL"], timeout=timeout)


def bls(replay: ReplayServer, *series: str) -> requests.Response:
    body = {"seriesid": list(series), "startyear": "2015", "endyear": "2015"}
    return requests.post(replay.environment()["BLS_API_URL"], json=body, timeout=10)


def test_status_faults_answer_as_a_failing_source_would(replay):
    faulted(replay, {"kind": "http_500", "endpoint": "datausa", "attempts": 1})
    assert datausa(replay).status_code == 500
    assert datausa(replay).status_code == 200  # cleared after one attempt
    replay.clear_hooks()
    faulted(replay, {"kind": "http_503", "endpoint": "datausa", "attempts": 1})
    assert datausa(replay).status_code == 503
    replay.clear_hooks()
    faulted(replay, {"kind": "http_429", "endpoint": "datausa", "retry_after": 7})
    limited = datausa(replay)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")


def test_transport_faults_break_the_connection_or_the_body(replay):
    faulted(replay, {"kind": "reset", "endpoint": "datausa", "attempts": 1})
    with pytest.raises(requests.exceptions.ConnectionError):
        datausa(replay)
    replay.clear_hooks()
    faulted(replay, {"kind": "timeout", "endpoint": "datausa", "attempts": 1, "delay_seconds": 1.0})
    with pytest.raises(requests.exceptions.ReadTimeout):
        datausa(replay, timeout=(2, 0.3))
    replay.clear_hooks()
    faulted(replay, {"kind": "truncated", "endpoint": "datausa", "attempts": 1})
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        datausa(replay)
    replay.clear_hooks()
    faulted(replay, {"kind": "slow_drip", "endpoint": "datausa", "drip_bytes_per_second": 2000})
    started = time.monotonic()
    assert datausa(replay).content == (REPLAY / "datausa" / "population.json").read_bytes()
    assert time.monotonic() - started >= len((REPLAY / "datausa" / "population.json").read_bytes()) / 2000 - 0.2


def test_payload_faults_answer_200_with_a_bad_body(replay):
    whole = (REPLAY / "datausa" / "population.json").read_bytes()
    faulted(replay, {"kind": "truncated_json", "endpoint": "datausa", "attempts": 1})
    cut = datausa(replay)
    assert cut.status_code == 200 and cut.content == whole[: len(whole) // 2]
    replay.clear_hooks()
    faulted(replay, {"kind": "html_200", "endpoint": "datausa", "attempts": 1})
    page = datausa(replay)
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html" and b"<html>" in page.content
    replay.clear_hooks()
    faulted(replay, {"kind": "schema_drift", "endpoint": "datausa", "attempts": 1})
    drifted = datausa(replay).json()
    assert "Population" not in drifted["columns"] and all("Total Population" in r for r in drifted["data"])
    replay.clear_hooks()
    faulted(replay, {"kind": "not_processed", "endpoint": "bls_api", "attempts": 1})
    assert bls(replay, "LNS14000000").json()["status"] == "REQUEST_NOT_PROCESSED"
    assert bls(replay, "LNS14000000").json()["status"] == "REQUEST_SUCCEEDED"


def test_faults_are_scripted_per_dataset_and_counted(replay):
    fault_plan = faulted(
        replay,
        {"kind": "http_503", "endpoint": "socrata_rows", "dataset": "utrz-jf79", "attempts": 2},
        {"kind": "schema_drift", "endpoint": "bls_api", "dataset": "PRS30006032"},
    )
    base = replay.environment()["SOCRATA_URL"]
    statuses = [requests.get(f"{base}resource/{d}.json", timeout=10).status_code for d in ("utrz-jf79",) * 3]
    assert statuses == [503, 503, 200]
    assert requests.get(f"{base}resource/amca-cgrp.json", timeout=10).status_code == 200  # another dataset
    # a coalesced query carrying the series is drifted; one without it is not
    assert "observation_value" in json.dumps(bls(replay, "LNS14000000", "PRS30006032").json())
    assert "observation_value" not in json.dumps(bls(replay, "LNS14000000").json())
    report = fault_plan.report()["source"]
    assert [(r["faulted"], r["matched"]) for r in report] == [(2, 3), (1, 1)]


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"kind": "not_processed", "endpoint": "datausa"}, "not_processed is an answer of bls_api"),
        ({"kind": "schema_drift", "endpoint": "bls_bulk_listing"}, "schema_drift needs"),
        ({"kind": "http_500", "endpoint": "ftp"}, "is not one of"),
        ({"kind": "http_500", "endpoint": "datausa", "attempts": 0}, "greater than or equal to 1"),
        ({"kind": "lightning", "endpoint": "datausa"}, "kind"),
        ({"kind": "http_500", "typo": 1}, "Extra inputs"),
    ],
)
def test_a_plan_that_cannot_apply_is_refused_by_name(fault, error):
    with pytest.raises(ValidationError, match=error):
        plan(fault)


@pytest.fixture
def s3():
    """moto's server over HTTP, as in the local runtime (in-process ``mock_aws`` answers from its own before-send
    handler, which runs, and writes, whatever an injected error says)."""
    server = MotoServer().start()
    try:
        (client,) = clients(
            "s3",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )
        client.create_bucket(Bucket="lake")
        yield client
    finally:
        server.stop()


def aws_faults(s3, *faults: dict) -> AwsFaults:
    installed = AwsFaults(FaultPlan.from_dict({"aws": list(faults)}).document.aws, "lake")
    installed.install(s3)
    return installed


def keys(s3) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket="lake").get("Contents", [])]


def test_s3_errors_are_retried_by_the_sdk_or_surface_as_client_errors(s3):
    retried = aws_faults(s3, {"kind": "error", "key": "landing/*", "status": 500, "times": 2})
    s3.put_object(Bucket="lake", Key="landing/a.json", Body=b"{}")  # the SDK's retries absorb two 500s
    s3.put_object(Bucket="lake", Key="staging/b.parquet", Body=b"x")  # another prefix: untouched
    assert [(r["injected"], r["keys"]) for r in retried.report()] == [(2, ["landing/a.json", "landing/a.json"])]
    denied = aws_faults(s3, {"kind": "error", "key": "marts/*", "status": 403, "code": "AccessDenied", "times": None})
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.put_object(Bucket="lake", Key="marts/c.parquet", Body=b"x")
    assert denied.report()[0]["injected"] == 1  # not retried: a 403 is final
    assert sorted(keys(s3)) == ["landing/a.json", "staging/b.parquet"]


def test_a_crash_before_or_after_a_write_kills_the_caller_at_that_point(s3):
    aws_faults(
        s3,
        {"kind": "crash", "key": "*.manifest.json", "when": "before", "times": 1},
        {"kind": "crash", "key": "landing/after/*", "when": "after", "times": 1},
    )
    with pytest.raises(SimulatedCrash, match="before PutObject landing/x.manifest.json"):
        s3.put_object(Bucket="lake", Key="landing/x.manifest.json", Body=b"{}")
    with pytest.raises(SimulatedCrash, match="after PutObject landing/after/y.json"):
        s3.put_object(Bucket="lake", Key="landing/after/y.json", Body=b"{}")
    assert not issubclass(SimulatedCrash, Exception)  # no `except Exception` in a handler can swallow it
    assert keys(s3) == ["landing/after/y.json"]  # the write before the crash happened; the other never did
    s3.put_object(Bucket="lake", Key="landing/x.manifest.json", Body=b"{}")  # times=1: the rerun goes through
