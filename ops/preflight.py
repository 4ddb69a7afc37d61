"""`make preflight STACK=... REGION=...`: check the target account before `sam deploy`, and stop with the reason.

    python -m ops.preflight [--config-env dev] [--stack NAME] [--region REGION] [--allow-low-concurrency]

What it checks, each against the account the AWS credentials point at, in the target region:

* layers: the SSM public parameters of the pinned Powertools and AWS SDK for pandas releases exist there, and the
  layer versions they name can be read;
* concurrency: the account's unreserved concurrency covers what the pipeline's event sources can run at once
  (a throttled SQS delivery counts a receive, and enough of them dead-letter the message);
* names: every physical name the template fixes is free (a new stack), or the stack exists in a state that
  can be updated; the stack name keeps every derived name within AWS's length limits;
* secrets: the BLS API key and the Socrata app token exist in SSM as SecureString;
* contact: ContactEmail is set, and not a placeholder (BLS answers 403 to requests without a real contact).

It prints what it found, one line per check, and exits 1 when any check stops the deploy.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

ROOT = Path(__file__).resolve().parent.parent
SAMCONFIG = ROOT / "samconfig.toml"

# Derived names are "<stack>-<stage>-<suffix>"; the longest suffix is "transformer-duration-near-timeout" on
# alarms (255 allowed), but Lambda function names allow 64: "<stack>-prod-transformer" leaves 47 for the stack
# name; SQS queue names allow 80. Keep a margin for new functions.
MAX_STACK_NAME = 40
STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
PLACEHOLDER_DOMAINS = re.compile(r"@(example\.(org|com|net)|.*\.(example|invalid|test|localhost))$", re.IGNORECASE)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
UPDATABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
# the stack's functions beyond its SQS event sources' MaximumConcurrency: the scheduler and notifier housekeeping
OTHER_CONCURRENCY = 2


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{'ok  ' if self.ok else 'STOP'}  {self.check:<12} {self.detail}"
        return text + (f"\n      {'':<12} fix: {self.fix}" if self.fix and not self.ok else "")


@dataclass(frozen=True)
class Target:
    """What would be deployed: the stack, the region and the template parameters (samconfig's, then defaults)."""

    stack: str
    region: str
    parameters: dict[str, str]
    template: dict[str, Any] = field(repr=False)

    @property
    def stage(self) -> str:
        return self.parameters.get("Stage", "dev")

    def prefix(self) -> str:
        return f"{self.stack}-{self.stage}"


# -- the target ---------------------------------------------------------------------------------------------------
def samconfig_environment(env: str, path: Path = SAMCONFIG) -> dict[str, Any]:
    """The ``[env.deploy.parameters]`` table (over ``[default.deploy.parameters]``) of samconfig.toml."""
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    merged = dict(config.get("default", {}).get("global", {}).get("parameters", {}))
    merged.update(config.get("default", {}).get("deploy", {}).get("parameters", {}))
    if env != "default":
        if env not in config:
            raise SystemExit(f"preflight: samconfig.toml has no [{env}] environment")
        merged.update(config[env].get("global", {}).get("parameters", {}))
        merged.update(config[env].get("deploy", {}).get("parameters", {}))
    return merged


def parse_overrides(text: str) -> dict[str, str]:
    """``Key=Value Key2="Value 2"`` as samconfig's parameter_overrides writes them."""
    return dict(item.split("=", 1) for item in shlex.split(text or ""))


def build_target(template: dict[str, Any], env: str, stack: str | None, region: str | None) -> Target:
    config = samconfig_environment(env)
    parameters = {k: str(v["Default"]) for k, v in template["Parameters"].items() if "Default" in v}
    parameters.update(parse_overrides(config.get("parameter_overrides", "")))
    return Target(
        stack=stack or config.get("stack_name", "opendata"),
        region=region or config.get("region", "us-east-1"),
        parameters=parameters,
        template=template,
    )


# -- checks (each takes its clients; none raises for an AWS answer) -----------------------------------------------
def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


SSM_PATHS = {
    "powertools": "/aws/service/powertools/python/x86_64/python3.13/{release}",
    "aws-sdk-pandas": "/aws/service/aws-sdk-pandas/{release}/{region}/py3.13/x86_64/layer-arn",
}


def layer_parameters(target: Target) -> dict[str, str]:
    """``{layer: SSM public parameter}`` of the releases the deploy pins, in the target region."""
    from ops.layers import PINNED_BY

    return {
        layer: path.format(release=target.parameters[PINNED_BY[layer]], region=target.region)
        for layer, path in SSM_PATHS.items()
    }


def check_layers(target: Target, ssm: Any, lam: Any) -> list[Finding]:
    findings = []
    for layer, name in layer_parameters(target).items():
        try:
            arn = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except ClientError as exc:
            findings.append(
                Finding(
                    "layers",
                    False,
                    f"{layer}: {name} does not exist in {target.region} ({_code(exc)})",
                    "this release publishes no layer in this region: pick another release in ops/layers.toml, "
                    "or another region",
                )
            )
            continue
        layer_arn, _, version = arn.rpartition(":")
        try:
            lam.get_layer_version(LayerName=layer_arn, VersionNumber=int(version))
        except (ClientError, ValueError) as exc:
            findings.append(Finding("layers", False, f"{layer}: {arn} cannot be read ({exc})", "check the ARN"))
            continue
        findings.append(Finding("layers", True, f"{layer}: {arn}"))
    return findings


def needed_concurrency(template: dict[str, Any]) -> int:
    """What the stack's functions can run at once: each SQS event source's MaximumConcurrency (Lambda's default
    poller scaling counts as 5 where none is set), plus the scheduler and the notifier's housekeeping."""
    total = OTHER_CONCURRENCY
    for res in template["Resources"].values():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        for event in res["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                total += int(event["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency", 5))
    return total


def concurrency_finding(settings: dict[str, Any], needed: int, allow_low: bool = False) -> Finding:
    """Compare GetAccountSettings' limits with what the stack needs (pure)."""
    limits = settings.get("AccountLimit", {})
    unreserved = int(limits.get("UnreservedConcurrentExecutions", 0))
    total = int(limits.get("ConcurrentExecutions", unreserved))
    detail = f"unreserved {unreserved} of {total}; the pipeline runs up to {needed} at once (it reserves none)"
    if unreserved >= needed:
        return Finding("concurrency", True, detail)
    fix = (
        "ask for a higher 'Concurrent executions' quota in Service Quotas (new accounts start at 10), or deploy "
        "anyway with PREFLIGHT_ARGS=--allow-low-concurrency: throttled deliveries then count receives"
    )
    return Finding("concurrency", allow_low, detail + (" (accepted)" if allow_low else ""), fix)


def check_concurrency(target: Target, lam: Any, allow_low: bool) -> list[Finding]:
    try:
        settings = lam.get_account_settings()
    except (ClientError, BotoCoreError) as exc:
        return [Finding("concurrency", False, f"cannot read the account settings: {exc}", "check the credentials")]
    return [concurrency_finding(settings, needed_concurrency(target.template), allow_low)]


def fixed_names(target: Target) -> dict[str, list[str]]:
    """The physical names the template fixes, by kind (the bucket, state table, Glue database and log groups end
    in the stack id's random tail, so they cannot collide and are not listed)."""
    prefix = target.prefix()
    kinds: dict[str, list[str]] = {"function": [], "queue": [], "topic": [], "table": [], "workgroup": []}
    for res in target.template["Resources"].values():
        props = res.get("Properties", {})
        name_key = {
            "AWS::Serverless::Function": ("function", "FunctionName"),
            "AWS::SQS::Queue": ("queue", "QueueName"),
            "AWS::SNS::Topic": ("topic", "TopicName"),
            "AWS::DynamoDB::Table": ("table", "TableName"),
            "AWS::Athena::WorkGroup": ("workgroup", "Name"),
        }.get(res["Type"])
        if name_key is None:
            continue
        kind, key = name_key
        value = props.get(key)
        if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
            kinds[kind].append(value["Fn::Sub"].replace("${AWS::StackName}-${Stage}", prefix))
    return kinds


def stack_name_findings(target: Target) -> list[Finding]:
    problems = []
    if not STACK_NAME.match(target.stack):
        problems.append("may hold only letters, digits and hyphens, starting with a letter")
    if len(target.stack) > MAX_STACK_NAME:
        problems.append(f"is {len(target.stack)} characters; at most {MAX_STACK_NAME} keep function names <= 64")
    if problems:
        return [Finding("stack name", False, f"{target.stack!r} " + "; ".join(problems), "choose a shorter name")]
    return [Finding("stack name", True, f"{target.stack} (names: {target.prefix()}-...)")]


def _exists(call: Callable[[], Any], missing: set[str]) -> bool:
    try:
        call()
    except KeyError:
        return False
    except ClientError as exc:
        if _code(exc) in missing:
            return False
        raise
    return True


def check_names(target: Target, clients: dict[str, Any]) -> list[Finding]:
    findings = stack_name_findings(target)
    cfn = clients["cloudformation"]
    try:
        stack = cfn.describe_stacks(StackName=target.stack)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" not in str(exc):
            return [*findings, Finding("names", False, f"cannot read the stack: {exc}", "check the credentials")]
        stack = None
    if stack is not None:
        status = stack["StackStatus"]
        if status in UPDATABLE:
            return [
                *findings,
                *flat_layout_findings(target, cfn),
                Finding("names", True, f"stack {target.stack} exists ({status}): an update"),
            ]
        return [
            *findings,
            Finding(
                "names",
                False,
                f"stack {target.stack} is {status}",
                "a stack that failed its first create must be deleted first: sam delete --stack-name "
                f"{target.stack} --region {target.region}",
            ),
        ]
    account = clients["sts"].get_caller_identity()["Account"]
    lookups: dict[str, Callable[[str], bool]] = {
        "function": lambda n: _exists(
            lambda: clients["lambda"].get_function(FunctionName=n), {"ResourceNotFoundException"}
        ),
        "queue": lambda n: _exists(
            lambda: clients["sqs"].get_queue_url(QueueName=n),
            {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"},
        ),
        "topic": lambda n: _exists(
            lambda: clients["sns"].get_topic_attributes(TopicArn=f"arn:aws:sns:{target.region}:{account}:{n}"),
            {"NotFound"},
        ),
        "table": lambda n: _exists(
            lambda: clients["dynamodb"].describe_table(TableName=n), {"ResourceNotFoundException"}
        ),
        # (a missing workgroup is InvalidRequestException on AWS; moto answers without one)
        "workgroup": lambda n: _exists(
            lambda: clients["athena"].get_work_group(WorkGroup=n)["WorkGroup"], {"InvalidRequestException"}
        ),
    }
    taken = []
    checked = 0
    for kind, names in fixed_names(target).items():
        for name in names:
            checked += 1
            if lookups[kind](name):
                taken.append(f"{kind} {name}")
    if taken:
        findings.append(
            Finding(
                "names",
                False,
                f"{len(taken)} of {checked} names are taken: {', '.join(taken)}",
                "another stack (or a deleted one's leftovers) uses them: choose another STACK name, or remove them "
                "(docs/operations.md#cleanup)",
            )
        )
    else:
        findings.append(Finding("names", True, f"new stack; all {checked} fixed names are free"))
    return findings


def check_secrets(target: Target, ssm: Any) -> list[Finding]:
    findings = []
    for parameter, what in (
        ("BlsApiKeyParameterName", "BLS API key"),
        ("SocrataAppTokenParameterName", "Socrata app token"),
    ):
        name = target.parameters[parameter]
        try:
            found = ssm.get_parameter(Name=name, WithDecryption=False)["Parameter"]
        except ClientError as exc:
            findings.append(
                Finding(
                    "secrets",
                    False,
                    f"{what}: {name} does not exist ({_code(exc)})",
                    f"aws ssm put-parameter --region {target.region} --name {name} --type SecureString "
                    "--value '<yours>'",
                )
            )
            continue
        if found.get("Type") != "SecureString":
            findings.append(
                Finding(
                    "secrets",
                    False,
                    f"{what}: {name} is a {found.get('Type')}",
                    "store it again with --type SecureString --overwrite",
                )
            )
        else:
            findings.append(Finding("secrets", True, f"{what}: {name} (SecureString)"))
    return findings


def check_contact(target: Target) -> list[Finding]:
    email = target.parameters.get("ContactEmail", "")
    fix = "set ContactEmail=<a monitored address> in parameter_overrides of samconfig.toml"
    if not email:
        return [Finding("contact", False, "ContactEmail is not set", fix)]
    if not EMAIL.match(email):
        return [Finding("contact", False, f"ContactEmail {email!r} is not an e-mail address", fix)]
    if PLACEHOLDER_DOMAINS.search(email):
        return [Finding("contact", False, f"ContactEmail {email} is a placeholder (a reserved domain)", fix)]
    return [Finding("contact", True, f"ContactEmail {email}")]


def flat_layout_findings(target: Target, cfn: Any) -> list[Finding]:
    """An existing stack deployed before the catalogue and monitoring moved into nested stacks cannot be updated.

    The update would create the nested stacks' resources under the names the stack's own still hold: the Glue
    database, workgroup and budget fail as taken, and CloudWatch overwrites the alarms and dashboard by name, which
    the old resources' deletion (or the rollback's) then removes, leaving the stack without alarms.
    """
    from localrun.template import nested_resource_ids

    moved = nested_resource_ids()
    paginator = cfn.get_paginator("list_stack_resources")
    held = sorted(
        r["LogicalResourceId"]
        for page in paginator.paginate(StackName=target.stack)
        for r in page["StackResourceSummaries"]
        if r["LogicalResourceId"] in moved
    )
    if not held:
        return []
    return [
        Finding(
            "layout",
            False,
            f"stack {target.stack} holds {len(held)} resources that now live in nested stacks ({', '.join(held[:3])}"
            f"{', ...' if len(held) > 3 else ''}): an update would collide with them",  # noqa: PLR2004 - a sample
            "see docs/operations.md#upgrading-a-stack-deployed-before-the-nested-stacks",
        )
    ]


def run_preflight(target: Target, clients: dict[str, Any], allow_low_concurrency: bool = False) -> list[Finding]:
    """Every check, in order; ``clients`` maps service names to boto3 clients of the target region."""
    return [
        *check_contact(target),
        *check_layers(target, clients["ssm"], clients["lambda"]),
        *check_concurrency(target, clients["lambda"], allow_low_concurrency),
        *check_names(target, clients),
        *check_secrets(target, clients["ssm"]),
    ]


SERVICES = ("ssm", "lambda", "cloudformation", "sts", "sqs", "sns", "dynamodb", "athena")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.preflight", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-env", default="dev", help="samconfig.toml environment (default: dev)")
    parser.add_argument("--stack", help="stack name (default: the environment's stack_name)")
    parser.add_argument("--region", help="region (default: the environment's region)")
    parser.add_argument("--allow-low-concurrency", action="store_true")
    args = parser.parse_args(argv)
    import boto3

    from localrun.template import load_template

    target = build_target(load_template(), args.config_env, args.stack, args.region)
    session = boto3.session.Session(region_name=target.region)
    clients = {name: session.client(name) for name in SERVICES}
    print(f"preflight: stack {target.stack} in {target.region} ({args.config_env}, Stage={target.stage})")
    try:
        findings = run_preflight(target, clients, args.allow_low_concurrency)
    except (ClientError, BotoCoreError) as exc:
        print(f"STOP  aws          {exc}\n                   fix: check the credentials and the region")
        return 1
    for finding in findings:
        print(finding.line())
    stops = [f for f in findings if not f.ok]
    print(f"preflight: {'STOP, ' + str(len(stops)) + ' to fix' if stops else 'ready to deploy'}")
    return 1 if stops else 0


if __name__ == "__main__":
    sys.exit(main())
