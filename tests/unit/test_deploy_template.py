"""What AWS does at deploy and run time that moto does not check, held to the template (and samconfig, Makefile)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localrun.template import Resolver, default_parameters, load_template

ROOT = Path(__file__).resolve().parents[2]
SQS_MAX_VISIBILITY = 12 * 3600
S3_BUCKET_NAME = re.compile(r"^(?!xn--)(?!.*-s3alias$)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@dataclass
class StackResolver(Resolver):
    """Resolves the template as CloudFormation would for a given stack name and stack id."""

    stack_name: str = "opendata"
    stack_id: str = "arn:aws:cloudformation:eu-west-1:111122223333:stack/opendata/11111111-2222-3333-4444-555566667777"

    def pseudo(self, name: str) -> Any:
        overrides = {"AWS::StackName": self.stack_name, "AWS::StackId": self.stack_id, "AWS::AccountId": "111122223333"}
        return overrides.get(name) or super().pseudo(name)


def physical_names(template: dict[str, Any], stack_name: str, uuid: str, **params: str) -> dict[str, str]:
    resolver = StackResolver(
        template,
        default_parameters(template, params),
        stack_name=stack_name,
        stack_id=f"arn:aws:cloudformation:eu-west-1:111122223333:stack/{stack_name}/{uuid}",
    )
    res = template["Resources"]
    names = {
        "bucket": resolver.resolve(res["LakeBucket"]["Properties"]["BucketName"]),
        "state": resolver.resolve(res["StateTable"]["Properties"]["TableName"]),
        "glue": resolver.resolve(res["GlueDatabase"]["Properties"]["DatabaseInput"]["Name"]),
    }
    for logical, r in res.items():
        if r["Type"] == "AWS::Logs::LogGroup":
            names[logical] = resolver.resolve(r["Properties"]["LogGroupName"])
    names["queue-policy-source"] = resolver.resolve(
        res["TransformQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Condition"]["ArnLike"][
            "aws:SourceArn"
        ]
    )
    return names


# -- finding 3: reserved concurrency ---------------------------------------------------------------------------
def test_no_function_reserves_concurrency_and_the_modeler_polls_at_most_two(template):
    functions = {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert [k for k, r in functions.items() if "ReservedConcurrentExecutions" in r["Properties"]] == []
    (event,) = functions["ModelerFunction"]["Properties"]["Events"].values()
    # 2 is the lowest MaximumConcurrency an SQS event source accepts; the rebuild lock serialises the two
    assert event["Properties"]["ScalingConfig"]["MaximumConcurrency"] == 2
    statements = functions["ModelerFunction"]["Properties"]["Policies"][0]["Statement"]
    requeue = next(s for s in statements if s["Sid"] == "RequeueWhileLocked")
    assert "sqs:SendMessage" in requeue["Action"] and requeue["Resource"] == {"Fn::GetAtt": ["ModelQueue", "Arn"]}


# -- finding 5: the deploy is non-interactive ------------------------------------------------------------------
def test_no_deploy_asks_for_a_change_set_confirmation():
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    deploys = {env: c["deploy"]["parameters"] for env, c in config.items() if isinstance(c, dict) and "deploy" in c}
    assert set(deploys) == {"default", "dev", "prod"}
    assert {env: p.get("confirm_changeset") for env, p in deploys.items()} == dict.fromkeys(deploys, False)
    makefile = (ROOT / "Makefile").read_text()
    deploy = makefile[makefile.index("\ndeploy:") :].split("\n\n")[0]
    assert deploy.startswith("\ndeploy: preflight build")
    assert "--no-confirm-changeset" in deploy
    workflow = (ROOT / ".github/workflows/deploy.yml").read_text()
    assert "make deploy ENV=" in workflow and "make smoke" in workflow


# -- finding 6: names ------------------------------------------------------------------------------------------
def test_two_stacks_and_a_redeploy_never_share_a_retained_or_catalog_name(template):
    first = physical_names(template, "opendata", "aaaaaaaa-bbbb-cccc-dddd-000000000001")
    second_stack = physical_names(template, "opendata-dev", "aaaaaaaa-bbbb-cccc-dddd-000000000002")
    # `sam delete` keeps the bucket and the state table; the next deploy of the same name is a new stack id
    redeploy = physical_names(template, "opendata", "aaaaaaaa-bbbb-cccc-dddd-000000000003")
    for other in (second_stack, redeploy):
        assert {k: v for k, v in first.items() if other[k] == v} == {}
    assert first["glue"] == "opendata_dev_000000000001"
    assert first["queue-policy-source"] == f"arn:aws:s3:::{first['bucket']}"


def test_the_bucket_name_is_valid_for_any_stack_name(template):
    for stack in ("OpenData-PROD", "a" * 128, "x"):
        names = physical_names(template, stack, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", Stage="prod")
        assert S3_BUCKET_NAME.match(names["bucket"]), names["bucket"]
        assert names["bucket"] == "opendata-prod-111122223333-a5b4c3d2e1f0"


def test_functions_log_to_their_stack_instance_groups_never_to_lambda_defaults(template):
    res = template["Resources"]
    for logical, r in res.items():
        if r["Type"] != "AWS::Serverless::Function":
            continue
        group = r["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        name = res[group]["Properties"]["LogGroupName"]
        assert "/aws/lambda/" not in str(name), logical
        assert "StackSuffix" in str(name), logical


def test_stack_deletion_is_not_blocked_and_what_is_kept_is_named(template):
    res = template["Resources"]
    assert res["AthenaWorkGroup"]["Properties"]["RecursiveDeleteOption"] is True
    retained = sorted(k for k, r in res.items() if r.get("DeletionPolicy") == "Retain")
    assert retained == ["LakeBucket", "StateTable"]  # README "Deploy" says how to clean them up


# -- finding 7: SQS's 12 h visibility --------------------------------------------------------------------------
def test_no_deferral_asks_sqs_for_more_than_12_hours_from_its_receive(template):
    from extractor.domain import deferral_seconds

    extractor = template["Resources"]["ExtractorFunction"]["Properties"]
    (event,) = extractor["Events"].values()
    held = extractor["Timeout"] + event["Properties"]["MaximumBatchingWindowInSeconds"]
    max_receives = template["Resources"]["ExtractQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    asked = [deferral_seconds(n) for n in range(1, max_receives + 1)]
    assert max(asked) + held <= SQS_MAX_VISIBILITY, (asked, held)
    # and the deferrals still outlast a spent BLS daily quota (24 h) before the last receive
    assert sum(asked[:-1]) > 24 * 3600


# -- finding 8: freshness alarms -------------------------------------------------------------------------------
def _freshness(template):
    return {k: r["Properties"] for k, r in template["Resources"].items() if k.startswith("Freshness")}


def test_freshness_alarms_are_quiet_on_a_fresh_stack_and_with_the_schedule_off(template):
    alarms = _freshness(template)
    assert len(alarms) == 4
    assert {p["TreatMissingData"] for p in alarms.values()} == {"notBreaching"}
    for state, enabled in (("ENABLED", True), ("DISABLED", False)):
        resolver = Resolver(template, default_parameters(template, {"ScheduleState": state}))
        assert {resolver.resolve(p["ActionsEnabled"]) for p in alarms.values()} == {enabled}


# -- finding 9: service principals on the KMS key --------------------------------------------------------------
def test_every_service_principal_is_bound_to_this_account_and_its_sources(template):
    statements = template["Resources"]["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    services = [s for s in statements if "Service" in s["Principal"]]
    assert {s["Principal"]["Service"] for s in services} == {
        "cloudwatch.amazonaws.com",
        "sns.amazonaws.com",
        "budgets.amazonaws.com",
    }
    for s in services:
        assert s["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}, s["Sid"]
        assert "aws:SourceArn" in s["Condition"]["ArnLike"], s["Sid"]


def test_the_notifiers_logs_links_point_at_those_log_groups(template):
    from notifier.links import ConsoleLinks

    env = template["Resources"]["NotifierFunction"]["Properties"]["Environment"]["Variables"]
    resolver = StackResolver(template, default_parameters(template, {}))
    prefix = resolver.resolve(env["LOG_GROUP_PREFIX"])
    assert prefix == "/opendata/opendata-dev-555566667777"
    links = ConsoleLinks("eu-west-1", "111122223333", "opendata-dev", log_group_prefix=prefix)
    expected = resolver.resolve(template["Resources"]["ModelerLogGroup"]["Properties"]["LogGroupName"])
    assert expected == "/opendata/opendata-dev-555566667777/modeler"
    assert links.logs("modeler").endswith("log-group/$252Fopendata$252Fopendata-dev-555566667777$252Fmodeler")
