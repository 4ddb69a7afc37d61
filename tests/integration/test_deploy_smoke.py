"""Deploy smoke test, offline: SAM transform with aws-sam-translator, then create_stack on moto.

`sam deploy` itself refuses moto (change-set stacks never get Outputs there), so the template is transformed
the way CloudFormation's SAM macro would, and the resulting stack is created directly.
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from moto import mock_aws

from checks.sam import package, transform_offline
from localrun.template import load_template
from tests.aws_builders import clients

pytestmark = pytest.mark.integration

ARTIFACTS = "deploy-artifacts"
# moto's CloudFormation skips these; cfn-lint, the template tests and the local runtime (which
# creates subscriptions, policies, notifications and Glue resources with boto3) cover them instead.
UNSUPPORTED_BY_MOTO = {
    "AWS::Glue::Database",
    "AWS::Glue::Table",
    "AWS::Athena::WorkGroup",
    "AWS::Athena::NamedQuery",
    "AWS::CloudWatch::Alarm",
    "AWS::Budgets::Budget",
    "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::S3::BucketPolicy",
}


def test_template_transforms_and_creates_on_moto():
    template = package(load_template(), ARTIFACTS)
    parameters = {"ContactEmail": "ops@example.org", "AlertEmail": "oncall@example.org"}
    transformed = transform_offline(template, parameters)
    resources = transformed["Resources"]
    kinds = [r["Type"] for r in resources.values()]
    assert kinds.count("AWS::Lambda::Function") == 5
    assert kinds.count("AWS::Lambda::EventSourceMapping") == 4
    assert all(
        "ReportBatchItemFailures" in r["Properties"]["FunctionResponseTypes"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    )
    assert kinds.count("AWS::IAM::Role") == 5  # one role per function
    assert {r["Properties"]["Runtime"] for r in resources.values() if r["Type"] == "AWS::Lambda::Function"} == {
        "python3.13"
    }

    with mock_aws():
        (s3,) = clients("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=ARTIFACTS)
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("placeholder.py", "")
        for logical, resource in template["Resources"].items():
            if resource["Type"] in {"AWS::Serverless::Function", "AWS::Serverless::LayerVersion"}:
                s3.put_object(Bucket=ARTIFACTS, Key=f"{logical}.zip", Body=archive.getvalue())
        (cfn,) = clients("cloudformation", region_name="us-east-1")
        with pytest.warns(UserWarning):  # moto warns for each resource type it only skips
            cfn.create_stack(
                StackName="opendata-smoke",
                TemplateBody=json.dumps(transformed),
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
            )
        stack = cfn.describe_stacks(StackName="opendata-smoke")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE"

        created = {
            r["LogicalResourceId"]: r["ResourceType"]
            for r in cfn.list_stack_resources(StackName="opendata-smoke")["StackResourceSummaries"]
        }
        expected = {k: r["Type"] for k, r in resources.items() if r["Type"] not in UNSUPPORTED_BY_MOTO}
        missing = set(expected) - set(created)
        assert not missing, f"not created on moto: {sorted(missing)}"

        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        declared = transformed["Outputs"]
        resolvable = {
            k
            for k, v in declared.items()
            if not any(resources.get(ref, {}).get("Type") in UNSUPPORTED_BY_MOTO for ref in _refs(v["Value"]))
        }
        assert resolvable <= set(outputs), sorted(resolvable - set(outputs))
        # Named after the stack id's random tail: unique per stack, valid whatever the stack is called.
        stack_tail = stack["StackId"].split("/")[2].split("-")[4]
        assert outputs["LakeBucketName"] == f"opendata-dev-123456789012-{stack_tail}"
        assert outputs["ExtractQueueUrl"].endswith("opendata-smoke-dev-extract")
        (sqs,) = clients("sqs", region_name="us-east-1")
        attributes = sqs.get_queue_attributes(
            QueueUrl=outputs["ExtractQueueUrl"], AttributeNames=["RedrivePolicy", "VisibilityTimeout"]
        )["Attributes"]
        assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].endswith("extract-dlq")


def _refs(value) -> set[str]:
    if isinstance(value, dict):
        if "Ref" in value:
            return {value["Ref"]}
        if "Fn::GetAtt" in value:
            return {value["Fn::GetAtt"][0]}
        return set().union(*(_refs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value)) if value else set()
    return set()
