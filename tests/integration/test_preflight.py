"""`make preflight` on moto: each check finds what a first deploy would trip over, and says how to fix it.

Faked at the boundary, because moto lacks them: Lambda's GetAccountSettings (the account's concurrency), and the
SSM public parameters under /aws/service/ (moto reserves the path and holds none of the layers' ones).
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from moto import mock_aws

from localrun.template import load_template
from ops.preflight import (
    SERVICES,
    build_target,
    concurrency_finding,
    fixed_names,
    needed_concurrency,
    run_preflight,
)
from tests.aws_builders import clients as aws_clients

pytestmark = pytest.mark.integration

REGION = "eu-south-2"
CONTACT = "ContactEmail=data-team@opendata.cat"


class AccountLimits:
    """The Lambda client, with GetAccountSettings answered (moto lacks it)."""

    def __init__(self, lam: Any, unreserved: int, total: int = 1000) -> None:
        self._lam, self._answer = (
            lam,
            {"AccountLimit": {"ConcurrentExecutions": total, "UnreservedConcurrentExecutions": unreserved}},
        )

    def get_account_settings(self) -> dict:
        return self._answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lam, name)


class PublicParameters:
    """The SSM client, with the publishers' public parameters (/aws/service/...) answered from a dict."""

    def __init__(self, ssm: Any) -> None:
        self._ssm, self.public = ssm, {}

    def get_parameter(self, Name: str, **kwargs: Any) -> dict:  # noqa: N803 - boto3's argument name
        if Name.startswith("/aws/service/"):
            if Name not in self.public:
                raise self._ssm.exceptions.ParameterNotFound(
                    {"Error": {"Code": "ParameterNotFound", "Message": Name}}, "GetParameter"
                )
            return {"Parameter": {"Name": Name, "Type": "String", "Value": self.public[Name]}}
        return self._ssm.get_parameter(Name=Name, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ssm, name)


@pytest.fixture
def account(monkeypatch):
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        clients = dict(zip(SERVICES, aws_clients(*SERVICES, region_name=REGION), strict=True))
        clients["lambda"] = AccountLimits(clients["lambda"], unreserved=990)
        clients["ssm"] = PublicParameters(clients["ssm"])
        yield clients


def publish_layers(clients: dict, pandas: bool = True) -> dict[str, str]:
    """The two managed layers as their publishers expose them: a layer version and its SSM public parameter."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("python/placeholder.py", "")
    arns = {}
    for layer, name in (
        ("powertools", "/aws/service/powertools/python/x86_64/python3.13/3.35.0"),
        ("aws-sdk-pandas", f"/aws/service/aws-sdk-pandas/3.16.1/{REGION}/py3.13/x86_64/layer-arn"),
    ):
        if layer == "aws-sdk-pandas" and not pandas:
            continue
        arn = clients["lambda"].publish_layer_version(LayerName=layer, Content={"ZipFile": archive.getvalue()})[
            "LayerVersionArn"
        ]
        clients["ssm"].public[name] = arn
        arns[layer] = arn
    return arns  # fmt: skip


def store_secrets(clients: dict, socrata: bool = True) -> None:
    clients["ssm"].put_parameter(Name="/opendata/bls/api-key", Value="k" * 32, Type="SecureString")
    if socrata:
        clients["ssm"].put_parameter(Name="/opendata/socrata/app-token", Value="t" * 25, Type="SecureString")


def target(stack: str = "opendata", overrides: str = CONTACT):
    built = build_target(load_template(), "dev", stack, REGION)
    built.parameters.update(dict(item.split("=", 1) for item in overrides.split()))
    return built


def lines(findings) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in findings:
        out.setdefault(f.check, []).append(("ok " if f.ok else "STOP ") + f.detail)
    return out


def test_a_ready_account_passes_every_check(account):
    arns = publish_layers(account)
    store_secrets(account)
    findings = run_preflight(target(), account)
    assert all(f.ok for f in findings), [f.line() for f in findings]
    found = lines(findings)
    assert found["layers"] == [f"ok powertools: {arns['powertools']}", f"ok aws-sdk-pandas: {arns['aws-sdk-pandas']}"]
    assert found["names"] == ["ok new stack; all 19 fixed names are free"]
    assert found["contact"] == ["ok ContactEmail data-team@opendata.cat"]
    assert found["concurrency"] == ["ok unreserved 990 of 1000; the pipeline runs up to 15 at once (it reserves none)"]


def test_everything_a_first_deploy_would_trip_over_stops_it(account):
    publish_layers(account, pandas=False)  # this release has no pandas layer in the region
    store_secrets(account, socrata=False)
    account["lambda"] = AccountLimits(account["lambda"]._lam, unreserved=10, total=10)  # a new account
    role = aws_clients("iam", region_name=REGION)[0].create_role(
        RoleName="leftover",
        AssumeRolePolicyDocument='{"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, '
        '"Action": "sts:AssumeRole"}]}',
    )["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x.py", "")
    account["lambda"].create_function(
        FunctionName="opendata-dev-scheduler",
        Runtime="python3.13",
        Role=role,
        Handler="x.handler",
        Code={"ZipFile": archive.getvalue()},
    )
    account["sqs"].create_queue(QueueName="opendata-dev-extract-dlq")
    findings = run_preflight(target(overrides="ContactEmail=data-team@example.org"), account)
    stops = {f.check: f for f in findings if not f.ok}
    assert set(stops) == {"contact", "layers", "concurrency", "names", "secrets"}
    assert "placeholder" in stops["contact"].detail
    assert stops["layers"].detail == (
        f"aws-sdk-pandas: /aws/service/aws-sdk-pandas/3.16.1/{REGION}/py3.13/x86_64/layer-arn does not exist in "
        f"{REGION} (ParameterNotFound)"
    )
    assert stops["concurrency"].detail.startswith("unreserved 10 of 10")
    assert stops["names"].detail == (
        "2 of 19 names are taken: function opendata-dev-scheduler, queue opendata-dev-extract-dlq"
    )
    assert (
        stops["secrets"].detail == "Socrata app token: /opendata/socrata/app-token does not exist (ParameterNotFound)"
    )
    assert "put-parameter" in stops["secrets"].fix and "SecureString" in stops["secrets"].fix


def test_a_long_or_odd_stack_name_is_refused_before_aws_refuses_it(account):
    publish_layers(account)
    store_secrets(account)
    findings = run_preflight(target(stack="Open_Data-" + "x" * 40), account)
    (stop,) = [f for f in findings if not f.ok]
    assert stop.check == "stack name"
    assert "letters, digits and hyphens" in stop.detail and "50 characters" in stop.detail


def test_a_stack_that_failed_its_first_create_must_be_deleted_first(account):
    publish_layers(account)
    store_secrets(account)
    cfn = account["cloudformation"]
    cfn.create_stack(StackName="opendata", TemplateBody='{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}')
    names = [f for f in run_preflight(target(), account) if f.check == "names"]
    assert [(f.ok, f.detail) for f in names] == [(True, "stack opendata exists (CREATE_COMPLETE): an update")]


def test_a_stack_deployed_before_the_nested_stacks_is_not_updated_in_place(account):
    cfn = account["cloudformation"]
    flat = {"Resources": {"Dashboard": {"Type": "AWS::SNS::Topic"}, "PipelineTopic": {"Type": "AWS::SNS::Topic"}}}
    cfn.create_stack(StackName="opendata", TemplateBody=json.dumps(flat))
    names = [f for f in run_preflight(target(), account) if f.check in {"names", "layout"}]
    assert [(f.check, f.ok) for f in names] == [("layout", False), ("names", True)]
    assert "holds 1 resources that now live in nested stacks (Dashboard)" in names[0].detail
    assert names[0].fix == "see docs/operations.md#upgrading-a-stack-deployed-before-the-nested-stacks"


def test_the_needed_concurrency_is_read_from_the_event_sources():
    template = load_template()
    # extract 2 + transform 4 + model 2 + notify (no limit: 5) + scheduler and housekeeping 2
    assert needed_concurrency(template) == 2 + 4 + 2 + 5 + 2
    assert concurrency_finding({"AccountLimit": {"UnreservedConcurrentExecutions": 14}}, 15).ok is False
    assert concurrency_finding({"AccountLimit": {"UnreservedConcurrentExecutions": 14}}, 15, allow_low=True).ok


def test_every_name_the_template_fixes_is_checked():
    names = fixed_names(target())
    assert names["function"] == [
        "opendata-dev-scheduler",
        "opendata-dev-extractor",
        "opendata-dev-transformer",
        "opendata-dev-modeler",
        "opendata-dev-notifier",
    ]
    assert names["table"] == ["opendata-dev-idempotency"]  # the retained state table's name is unique per stack
    assert len(names["queue"]) == 9 and names["workgroup"] == ["opendata-dev"]
