"""Least privilege and encryption, checked on the SAM-transformed template (what CloudFormation deploys).

Rules
-----
IAM001  an Allow statement grants a wildcard action ("*" or "service:*")
IAM002  an Allow statement grants on Resource "*" (beyond the actions AWS only allows on "*")
ENC001  an S3 bucket without default encryption, public access block or a TLS-only bucket policy
ENC002  an SQS queue, SNS topic or DynamoDB table without encryption at rest
SEC001  a function environment variable or parameter default whose value looks like a plaintext secret
SUP001  a suppression without a reason

A resource may suppress a rule only with a reason, in its Metadata:

    Metadata:
      SecurityExceptions:
        - Rule: IAM002
          Reason: KMS key policies must name Resource "*" (the key itself)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Actions that AWS only grants on Resource "*" (no resource-level permissions exist for them).
RESOURCELESS_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
    "cloudwatch:PutMetricData",
    "logs:CreateLogGroup",
}


@dataclass(frozen=True)
class Finding:
    rule: str
    resource: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule} {self.resource}: {self.message}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policy_documents(resource: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    props = resource.get("Properties", {})
    kind = resource["Type"]
    if kind == "AWS::IAM::Role":
        for policy in props.get("Policies", []):
            if isinstance(policy, dict) and "PolicyDocument" in policy:
                yield policy.get("PolicyName", "inline"), policy["PolicyDocument"]
    elif kind in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
        yield props.get("PolicyName", "policy"), props["PolicyDocument"]


def _exceptions(resource: dict[str, Any], logical: str, findings: list[Finding]) -> set[str]:
    allowed = set()
    for entry in resource.get("Metadata", {}).get("SecurityExceptions", []):
        rule, reason = entry.get("Rule"), str(entry.get("Reason", "")).strip()
        if not reason or len(reason) < 10:
            findings.append(Finding("SUP001", logical, f"suppression of {rule} has no reason"))
            continue
        allowed.add(rule)
    return allowed


def check_iam(logical: str, resource: dict[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    for name, document in _policy_documents(resource):
        for statement in _as_list(document.get("Statement", [])):
            if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
                continue
            actions = [a for a in _as_list(statement.get("Action", [])) if isinstance(a, str)]
            for action in actions:
                if action == "*" or action.endswith(":*"):
                    findings.append(Finding("IAM001", logical, f"policy {name} allows wildcard action {action}"))
            resources = _as_list(statement.get("Resource", []))
            if "*" in resources and not set(actions) <= RESOURCELESS_ACTIONS:
                findings.append(
                    Finding(
                        "IAM002", logical, f"policy {name} allows {sorted(set(actions) - RESOURCELESS_ACTIONS)} on *"
                    )
                )
    return findings


def _tls_only(policies: list[dict[str, Any]], bucket_logical: str) -> bool:
    for policy in policies:
        bucket_ref = policy["Properties"].get("Bucket")
        if bucket_ref != {"Ref": bucket_logical}:
            continue
        for statement in _as_list(policy["Properties"]["PolicyDocument"].get("Statement", [])):
            condition = statement.get("Condition", {}).get("Bool", {})
            if statement.get("Effect") == "Deny" and str(condition.get("aws:SecureTransport")).lower() == "false":
                return True
    return False


def check_storage(logical: str, resource: dict[str, Any], template: dict[str, Any]) -> list[Finding]:
    props, kind = resource.get("Properties", {}), resource["Type"]
    findings: list[Finding] = []
    if kind == "AWS::S3::Bucket":
        if not props.get("BucketEncryption"):
            findings.append(Finding("ENC001", logical, "bucket has no default encryption"))
        block = props.get("PublicAccessBlockConfiguration", {})
        flags = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        if not all(block.get(flag) is True for flag in flags):
            findings.append(Finding("ENC001", logical, "bucket does not block all public access"))
        policies = [r for r in template["Resources"].values() if r["Type"] == "AWS::S3::BucketPolicy"]
        if not _tls_only(policies, logical):
            findings.append(Finding("ENC001", logical, "no bucket policy denies non-TLS (aws:SecureTransport)"))
    elif kind == "AWS::SQS::Queue":
        if not (props.get("SqsManagedSseEnabled") is True or props.get("KmsMasterKeyId")):
            findings.append(Finding("ENC002", logical, "queue is not encrypted (SqsManagedSseEnabled/KmsMasterKeyId)"))
    elif kind == "AWS::SNS::Topic":
        if not props.get("KmsMasterKeyId"):
            findings.append(Finding("ENC002", logical, "topic is not encrypted (KmsMasterKeyId)"))
    elif kind == "AWS::DynamoDB::Table":
        if props.get("SSESpecification", {}).get("SSEEnabled") is not True:
            findings.append(Finding("ENC002", logical, "table has no SSESpecification.SSEEnabled"))
    return findings


_SECRET_SHAPED = re.compile(r"^[A-Za-z0-9+/=_\-]{24,}$")
_SECRET_NAME = re.compile(r"(?i)(key|token|secret|password|webhook)")


def _looks_secret(name: str, value: Any) -> bool:
    if not isinstance(value, str) or value.startswith(("arn:", "http", "/", "s3://")):
        return False
    return bool(_SECRET_SHAPED.match(value)) and (bool(_SECRET_NAME.search(name)) or len(set(value)) > 12)


def check_plaintext_secrets(logical: str, resource: dict[str, Any]) -> list[Finding]:
    if resource["Type"] not in {"AWS::Lambda::Function", "AWS::Serverless::Function"}:
        return []
    variables = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
    return [
        Finding("SEC001", logical, f"environment variable {name} holds a secret-looking literal")
        for name, value in variables.items()
        if _looks_secret(name, value)
    ]


def check_parameters(template: dict[str, Any]) -> list[Finding]:
    return [
        Finding("SEC001", name, "parameter default looks like a secret (use an SSM parameter name)")
        for name, spec in template.get("Parameters", {}).items()
        if _looks_secret(name, str(spec.get("Default", ""))) and not spec.get("NoEcho")
    ]


def check_template(template: dict[str, Any]) -> list[Finding]:
    """Every finding in a transformed (plain CloudFormation) template, after reasoned suppressions."""
    findings: list[Finding] = check_parameters(template)
    for logical, resource in template["Resources"].items():
        raw = (
            check_iam(logical, resource)
            + check_storage(logical, resource, template)
            + check_plaintext_secrets(logical, resource)
        )
        allowed = _exceptions(resource, logical, findings)
        findings.extend(f for f in raw if f.rule not in allowed)
    return findings
