"""The SAM transform, offline: what CloudFormation's Serverless macro would deploy, without an AWS account."""

from __future__ import annotations

import copy
from typing import Any

import boto3

# The managed policies SAM attaches to function roles (normally looked up in IAM).
MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}"
    for name, path in {
        "AWSLambdaBasicExecutionRole": "service-role/AWSLambdaBasicExecutionRole",
        "AWSXrayWriteOnlyAccess": "AWSXrayWriteOnlyAccess",
        "AWSXRayDaemonWriteAccess": "AWSXRayDaemonWriteAccess",
        "AWSLambdaSQSQueueExecutionRole": "service-role/AWSLambdaSQSQueueExecutionRole",
    }.items()
}


def package(template: dict[str, Any], bucket: str = "deploy-artifacts") -> dict[str, Any]:
    """What `sam package` produces: each function's code and each layer's content as an S3 location."""
    packaged = copy.deepcopy(template)
    for logical, resource in packaged["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://{bucket}/{logical}.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = f"s3://{bucket}/{logical}.zip"
    return packaged


def transform_offline(
    template: dict[str, Any], parameters: dict[str, str] | None = None, region: str = "us-east-1"
) -> dict[str, Any]:
    """Transform a (packaged) SAM template to plain CloudFormation with aws-sam-translator."""
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    params = {"ContactEmail": "ops@example.org", **(parameters or {})}
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    return translator.translate(
        copy.deepcopy(template), parameter_values=params, get_managed_policy_map=lambda: MANAGED_POLICIES
    )
