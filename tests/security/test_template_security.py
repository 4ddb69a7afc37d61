"""Least privilege and encryption on the deployed (SAM-transformed) template; planted faults are caught."""

from __future__ import annotations

import copy

import pytest

from checks.sam import package, transform_offline
from checks.template_security import check_template
from localrun.template import load_template


@pytest.fixture(scope="module")
def sam_template() -> dict:
    return package(load_template())


def rules(findings) -> set[tuple[str, str]]:
    return {(f.rule, f.resource) for f in findings}


def test_the_template_passes_every_check(sam_template):
    findings = check_template(transform_offline(sam_template))
    assert findings == [], "\n".join(map(str, findings))


def test_a_planted_wildcard_policy_is_caught(sam_template):
    planted = copy.deepcopy(sam_template)
    planted["Resources"]["ExtractorFunction"]["Properties"]["Policies"].append(
        {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    )
    findings = rules(check_template(transform_offline(planted)))
    assert ("IAM001", "ExtractorFunctionRole") in findings
    assert ("IAM002", "ExtractorFunctionRole") in findings


def test_a_suppression_needs_a_reason(sam_template):
    planted = copy.deepcopy(sam_template)
    function = planted["Resources"]["NotifierFunction"]
    function["Properties"]["Policies"].append(
        {"Statement": [{"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}]}
    )
    transformed = transform_offline(planted)
    role = transformed["Resources"]["NotifierFunctionRole"]
    role["Metadata"] = {"SecurityExceptions": [{"Rule": "IAM002", "Reason": ""}]}
    assert {("SUP001", "NotifierFunctionRole"), ("IAM002", "NotifierFunctionRole")} <= rules(
        check_template(transformed)
    )
    role["Metadata"] = {"SecurityExceptions": [{"Rule": "IAM002", "Reason": "publishes to topics named at run time"}]}
    assert not {r for r in rules(check_template(transformed)) if r[1] == "NotifierFunctionRole"}


@pytest.mark.parametrize(
    ("logical", "key", "rule"),
    [
        ("ExtractQueue", "SqsManagedSseEnabled", "ENC002"),
        ("PipelineTopic", "KmsMasterKeyId", "ENC002"),
        ("StateTable", "SSESpecification", "ENC002"),
        ("LakeBucket", "BucketEncryption", "ENC001"),
        ("LakeBucket", "PublicAccessBlockConfiguration", "ENC001"),
    ],
)
def test_missing_encryption_or_public_block_is_caught(sam_template, logical, key, rule):
    planted = copy.deepcopy(sam_template)
    del planted["Resources"][logical]["Properties"][key]
    assert (rule, logical) in rules(check_template(transform_offline(planted)))


def test_a_bucket_without_the_tls_only_policy_is_caught(sam_template):
    planted = copy.deepcopy(sam_template)
    del planted["Resources"]["LakeBucketPolicy"]
    planted["Resources"]["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]["ResultConfiguration"][
        "OutputLocation"
    ] = "s3://elsewhere/athena/"
    assert ("ENC001", "LakeBucket") in rules(check_template(transform_offline(planted)))


def test_a_plaintext_secret_in_the_environment_is_caught(sam_template):
    planted = copy.deepcopy(sam_template)
    planted["Resources"]["ExtractorFunction"]["Properties"]["Environment"]["Variables"]["BLS_API_KEY"] = (
        "0f3c9a7be1d24c55" + "a8e6f0b2d9c4e7a1"
    )
    assert ("SEC001", "ExtractorFunction") in rules(check_template(transform_offline(planted)))
