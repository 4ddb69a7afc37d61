"""Read template.yaml (and the nested stacks it includes) and resolve what the local runtime needs from it.

The local runtime creates its resources from these declarations, so local mode cannot drift from the
template: queue attributes, redrive policies, topics, filtered subscriptions, tables, the bucket and its
notification, each function's handler, environment and event-source mappings, and the catalogue (Glue, Athena)
that stacks/catalog.yaml declares. ``load_template`` gives every reader one merged view: the root with each nested
stack's resources in place of its ``AWS::Serverless::Application`` (see ``inline_nested_stacks``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
# The nested stacks template.yaml includes (AWS::Serverless::Application with a local Location).
CATALOG_TEMPLATE = ROOT / "stacks" / "catalog.yaml"
MONITORING_TEMPLATE = ROOT / "stacks" / "monitoring.yaml"
TEMPLATE_FILES = (TEMPLATE, CATALOG_TEMPLATE, MONITORING_TEMPLATE)

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
STACK_NAME = "odp-local"
# A stack id as CloudFormation makes one: the template derives per-stack names from its random tail.
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/6f1c2a4e-0d3b-4c5a-9e8f-7a6b5c4d3e2f"

_TAGS = {
    "!Ref": "Ref",
    "!Condition": "Condition",
    "!GetAtt": "Fn::GetAtt",
    "!Sub": "Fn::Sub",
    "!If": "Fn::If",
    "!Equals": "Fn::Equals",
    "!Not": "Fn::Not",
    "!And": "Fn::And",
    "!Or": "Fn::Or",
    "!Join": "Fn::Join",
    "!Select": "Fn::Select",
    "!Split": "Fn::Split",
    "!FindInMap": "Fn::FindInMap",
    "!Base64": "Fn::Base64",
    "!ImportValue": "Fn::ImportValue",
    "!GetAZs": "Fn::GetAZs",
    "!Cidr": "Fn::Cidr",
}


class _CfnLoader(yaml.SafeLoader):
    pass


def _make_constructor(fn: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if fn == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {fn: value}

    return construct


for _tag, _fn in _TAGS.items():
    _CfnLoader.add_constructor(_tag, _make_constructor(_fn))


def load_file(path: Path = TEMPLATE) -> dict[str, Any]:
    """One template file as CloudFormation hands it to the SAM transform: with ``AWS::LanguageExtensions`` applied."""
    raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return apply_language_extensions(raw)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The stack as one template: ``path`` with its nested stacks inlined (``inline_nested_stacks``).

    Every reader that needs "all the resources" (the local runtime, the IAM evaluation, the template tests, the
    moto deploy smoke) reads this; a reader of one file's text (``make glue-tables``) reads that file.
    """
    return inline_nested_stacks(load_file(path), path.parent)


# -- Nested stacks --------------------------------------------------------------------------------------------------
NESTED_STACK = "AWS::Serverless::Application"
# A nested stack's own name and id are not its parent's: a name built from them would differ from the one the
# parent's resources (and the notifier's links) expect, so the children take such names as parameters.
_FORBIDDEN_IN_CHILD = ("AWS::StackName", "AWS::StackId")


class NestedStackError(ValueError):
    """A nested stack the root cannot include as declared (a parameter or an output the two disagree on)."""


def nested_stacks(template: dict[str, Any], base: Path = ROOT) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Each local nested stack of ``template``: logical id -> (its template file, the parameters the root passes)."""
    found = {}
    for logical, res in template.get("Resources", {}).items():
        if res.get("Type") == NESTED_STACK:
            props = res["Properties"]
            if not isinstance(props.get("Location"), str):
                raise NestedStackError(f"{logical}: only a local Location (a path) is read here")
            found[logical] = (base / props["Location"], dict(props.get("Parameters", {})))
    return found


def nested_resource_ids(path: Path = TEMPLATE) -> dict[str, str]:
    """Each resource a nested stack of ``path`` declares: logical id -> the nested stack's logical id."""
    return {
        resource: logical
        for logical, (child, _) in nested_stacks(load_file(path), path.parent).items()
        for resource in load_file(child).get("Resources", {})
    }


def child_parameter_values(logical: str, child: dict[str, Any], passed: dict[str, Any]) -> dict[str, Any]:
    """What each of the child's parameters is, as an expression of the root: passed, or else the child's default.

    Raises
    ------
    NestedStackError
        When the root passes a parameter the child does not declare, or omits one that has no default: both fail
        the deploy (CloudFormation checks neither before it creates the nested stack).
    """
    declared = child.get("Parameters", {})
    unknown = sorted(set(passed) - set(declared))
    if unknown:
        raise NestedStackError(f"{logical}: passes parameters the nested stack does not declare: {unknown}")
    values = {}
    missing = []
    for name, spec in declared.items():
        if name in passed:
            values[name] = passed[name]
        elif "Default" in spec:
            values[name] = str(spec["Default"])
        else:
            missing.append(name)
    if missing:
        raise NestedStackError(f"{logical}: does not pass the nested stack's parameters {missing}")
    return values


def _sub_text_of(expression: Any) -> str | None:
    """``expression`` written inside a ``Fn::Sub`` string, when it can be (a literal, a Ref, a GetAtt, a plain Sub)."""
    if isinstance(expression, str | int | float) and not isinstance(expression, bool):
        text = str(expression)
        return None if "${" in text else text
    if isinstance(expression, dict) and len(expression) == 1:
        ((fn, argument),) = expression.items()
        if fn == "Ref" and isinstance(argument, str):
            return "${" + argument + "}"
        if fn == "Fn::GetAtt" and isinstance(argument, list) and all(isinstance(a, str) for a in argument):
            return "${" + ".".join(argument) + "}"
        if fn == "Fn::Sub" and isinstance(argument, str):
            return argument
    return None


def _substitute(node: Any, values: dict[str, Any]) -> Any:
    """``node`` with each ``Ref`` of, and ``${}`` of, a name in ``values`` replaced by that value (an expression)."""
    if isinstance(node, list):
        return [_substitute(item, values) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((fn, argument),) = node.items()
        if fn == "Ref" and isinstance(argument, str) and argument in values:
            return values[argument]
        if fn == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], dict(argument[1]))
            variables = {k: _substitute(v, values) for k, v in variables.items()}
            extra: dict[str, Any] = {}

            def replace(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in variables or name not in values:  # a Sub's own variable hides a parameter's name
                    return match.group(0)
                inline = _sub_text_of(values[name])
                if inline is None:
                    extra[name] = values[name]
                    return match.group(0)
                return inline

            text = _SUB_VARIABLE.sub(replace, text)
            variables.update(extra)
            return {fn: [text, variables] if variables else text}
    return {k: _substitute(v, values) for k, v in node.items()}


def _uses(node: Any, names: tuple[str, ...]) -> set[str]:
    text = json.dumps(node)
    return {n for n in names if f'"Ref": "{n}"' in text or "${" + n + "}" in text}


def inline_nested_stacks(template: dict[str, Any], base: Path = ROOT) -> dict[str, Any]:
    """The root with each local nested stack's resources, conditions and outputs in place of the stack itself.

    Within a child, a parameter becomes the expression the root passes for it; in the root, a child's output
    (``!GetAtt Child.Outputs.Name``, or ``${Child.Outputs.Name}`` in a ``Fn::Sub``) becomes that output's value. The
    result reads as the one flat template the stacks together deploy, so a reader never looks for a resource in
    a child. A root without nested stacks is returned as it is.

    Raises
    ------
    NestedStackError
        On a parameter the two disagree on (``child_parameter_values``), an output the child does not declare, a
        child that builds a name from its own stack name or id, or a logical id or condition both declare
        differently.
    """
    stacks = nested_stacks(template, base)
    if not stacks:
        return template
    merged = dict(template)
    resources = {k: v for k, v in template["Resources"].items() if k not in stacks}
    conditions = dict(template.get("Conditions", {}))
    outputs: dict[str, Any] = {}  # "Child.Outputs.Name" -> value
    for logical, (path, passed) in stacks.items():
        child = load_file(path)
        forbidden = _uses({k: child.get(k, {}) for k in ("Resources", "Conditions", "Outputs")}, _FORBIDDEN_IN_CHILD)
        if forbidden:
            raise NestedStackError(f"{path.name}: uses {sorted(forbidden)}, which are not the root stack's")
        values = child_parameter_values(logical, child, passed)
        for name, declared in child.get("Conditions", {}).items():
            condition = _substitute(declared, values)
            if conditions.setdefault(name, condition) != condition:
                raise NestedStackError(f"{path.name}: condition {name} differs from the root's")
        for name, resource in child.get("Resources", {}).items():
            if name in resources or name in stacks:
                raise NestedStackError(f"{path.name}: {name} is declared twice")
            resources[name] = _substitute(resource, values)
        for name, output in child.get("Outputs", {}).items():
            outputs[f"{logical}.Outputs.{name}"] = _substitute(output["Value"], values)
    merged["Resources"] = resources
    if conditions:
        merged["Conditions"] = conditions
    return {**merged, **{s: _inline_outputs(merged[s], outputs) for s in ("Resources", "Outputs") if s in merged}}


def _inline_outputs(node: Any, outputs: dict[str, Any]) -> Any:
    """``node`` with every reference to a nested stack's output replaced by the output's value."""
    if isinstance(node, list):
        return [_inline_outputs(item, outputs) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((fn, argument),) = node.items()
        if fn == "Fn::GetAtt" and isinstance(argument, list) and len(argument) == 2:  # noqa: PLR2004 - [id, attribute]
            key = ".".join(argument)
            if key in outputs:
                return outputs[key]
            if argument[1].startswith("Outputs."):
                raise NestedStackError(f"{key}: the nested stack declares no such output")
        if fn == "Fn::Sub":
            text = argument if isinstance(argument, str) else argument[0]
            for name in set(_SUB_VARIABLE.findall(text)):
                if ".Outputs." in name and name not in outputs:
                    raise NestedStackError(f"{name}: the nested stack declares no such output")
            return _substitute(node, {k: v for k, v in outputs.items() if "${" + k + "}" in text})
    return {k: _inline_outputs(v, outputs) for k, v in node.items()}


# -- AWS::LanguageExtensions --------------------------------------------------------------------------------------
LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
_FOR_EACH = "Fn::ForEach::"
_SUB_VARIABLE = re.compile(r"\$\{(?!!)([^}]+)\}")


def apply_language_extensions(template: dict[str, Any]) -> dict[str, Any]:
    """Expand what the template uses of ``AWS::LanguageExtensions``, as CloudFormation does before SAM runs.

    ``Fn::ForEach::Name: [Identifier, [values...], {fragment}]`` becomes one copy of the fragment per value. In a
    copy, ``${Identifier}`` (and ``&{Identifier}``, non-alphanumerics stripped) is replaced in keys and in ``Fn::Sub``
    strings, and ``{"Ref": Identifier}`` becomes the value; then, within the copy, ``Fn::FindInMap`` with literal keys
    is looked up, a ``Fn::Sub`` variable that is a literal is written into its string, and a ``Fn::Sub`` left without
    variables becomes a plain string. A template without the transform is returned as it is.
    (tests/unit/test_template_language_extensions.py holds this to cfn-lint's own expansion.)

    Raises
    ------
    ValueError
        On a malformed loop, or two copies with the same key.
    """
    transforms = template.get("Transform")
    names = [transforms] if isinstance(transforms, str) else list(transforms or [])
    if LANGUAGE_EXTENSIONS not in names:
        return template
    expanded = dict(template)
    mappings = template.get("Mappings", {})
    for section in ("Conditions", "Resources", "Outputs"):
        if section in template:
            expanded[section] = _expand(template[section], {}, mappings)
    rest = [n for n in names if n != LANGUAGE_EXTENSIONS]
    expanded["Transform"] = rest[0] if len(rest) == 1 else rest
    if not rest:
        del expanded["Transform"]
    return expanded


def _replace_identifiers(text: str, params: dict[str, str]) -> str:
    for name, value in params.items():
        text = text.replace("${" + name + "}", value).replace("&{" + name + "}", re.sub(r"[^0-9A-Za-z]", "", value))
    return text


def _expand(node: Any, params: dict[str, str], mappings: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_expand(item, params, mappings) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith(_FOR_EACH):
            if not (isinstance(value, list) and len(value) == 3 and isinstance(value[2], dict)):
                raise ValueError(f"{key}: expected [identifier, collection, fragment]")
            identifier, collection, fragment = value
            for item in _expand(collection, params, mappings):
                for copy_key, copy in _expand(fragment, {**params, identifier: str(item)}, mappings).items():
                    if copy_key in out or copy_key in node:
                        raise ValueError(f"{key}: {copy_key} is declared twice")
                    out[copy_key] = copy
            continue
        out[_replace_identifiers(key, params) if params else key] = _expand(value, params, mappings)
    return _fold(out, params, mappings) if params and len(out) == 1 else out


def _fold(out: dict[str, Any], params: dict[str, str], mappings: dict[str, Any]) -> Any:
    """An intrinsic function inside a loop's copy, with what the copy makes literal resolved."""
    ((fn, argument),) = out.items()
    if fn == "Ref" and isinstance(argument, str) and argument in params:
        return params[argument]
    if fn == "Fn::FindInMap" and all(isinstance(a, str) for a in argument):
        mapping, top, second = argument
        return mappings[mapping][top][second]
    if fn == "Fn::Sub":
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], dict(argument[1]))
        text = _replace_identifiers(text, params)
        for name, literal in list(variables.items()):
            if isinstance(literal, str | int | float) and not isinstance(literal, bool):
                text = text.replace("${" + name + "}", str(literal))
                del variables[name]
        if variables:
            return {fn: [text, variables]}
        return text if not _SUB_VARIABLE.search(text) else {fn: text}
    return out


class _NoValue:
    pass


NO_VALUE = _NoValue()


@dataclass
class Resolver:
    """Resolves CloudFormation intrinsics for one local stack."""

    template: dict[str, Any]
    parameters: dict[str, str]
    physical: dict[str, dict[str, str]] = field(default_factory=dict)  # logical id -> {"Ref": .., "Arn": ..}

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": STACK_ID,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }[name]

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            return self.physical[name]["Ref"]
        raise KeyError(f"cannot resolve Ref {name} locally (not created yet?)")

    def get_att(self, logical: str, attribute: str) -> Any:
        try:
            return self.physical[logical][attribute]
        except KeyError as exc:
            raise KeyError(f"cannot resolve GetAtt {logical}.{attribute} locally") from exc

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return str(self.get_att(logical, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, node: Any) -> Any:  # noqa: C901, PLR0911, PLR0912 - one branch per intrinsic
        if isinstance(node, list):
            return [v for v in (self.resolve(i) for i in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return self.ref(value)
            if key == "Fn::GetAtt":
                return self.get_att(value[0], value[1])
            if key == "Fn::Sub":
                if isinstance(value, list):
                    text, variables = value[0], {k: self.resolve(v) for k, v in value[1].items()}
                else:
                    text, variables = value, {}
                return self._sub(text, variables)
            if key == "Fn::If":
                name, yes, no = value
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in value)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(value[0])
            if key == "Fn::And":
                return all(self.resolve(v) for v in value)
            if key == "Fn::Or":
                return any(self.resolve(v) for v in value)
            if key == "Condition":
                return self.condition(value)
            if key == "Fn::Join":
                return value[0].join(str(v) for v in self.resolve(value[1]))
            if key == "Fn::Select":
                return self.resolve(value[1])[int(self.resolve(value[0]))]
            if key == "Fn::Split":
                return str(self.resolve(value[1])).split(value[0])
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NO_VALUE}


def default_parameters(template: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, str]:
    params = {name: str(spec["Default"]) for name, spec in template.get("Parameters", {}).items() if "Default" in spec}
    params.setdefault("ContactEmail", "local-run@example.org")
    params.update(overrides or {})
    missing = [n for n in template.get("Parameters", {}) if n not in params]
    if missing:
        raise ValueError(f"template parameters without a local value: {missing}")
    return params


@dataclass(frozen=True)
class QueueDecl:
    logical_id: str
    name: str
    attributes: dict[str, str]
    dead_letter_logical_id: str | None
    max_receive_count: int | None


@dataclass(frozen=True)
class SubscriptionDecl:
    logical_id: str
    topic_logical_id: str
    protocol: str
    endpoint_logical_id: str | None
    filter_policy: dict[str, Any] | None
    filter_policy_scope: str | None
    raw_message_delivery: bool


@dataclass(frozen=True)
class EventSourceDecl:
    queue_logical_id: str
    batch_size: int
    batching_window_s: int
    report_batch_item_failures: bool


@dataclass(frozen=True)
class FunctionDecl:
    logical_id: str
    name: str
    code_uri: str
    handler: str
    timeout: int
    memory: int
    environment: dict[str, Any]  # unresolved; resolve after resources exist
    sqs_events: list[EventSourceDecl]
    schedule: str | None
    reserved_concurrency: int | None


def _logical_of(node: Any) -> str | None:
    if isinstance(node, dict):
        if "Ref" in node:
            return node["Ref"]
        if "Fn::GetAtt" in node:
            return node["Fn::GetAtt"][0]
    return None


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def queue_declarations(template: dict[str, Any], resolver: Resolver) -> list[QueueDecl]:
    """Queues with their attributes; DLQs (queues without a redrive policy) come first."""
    decls = []
    for logical, res in resources_of(template, "AWS::SQS::Queue").items():
        props = res.get("Properties", {})
        attributes = {
            key: str(resolver.resolve(props[key])).lower() if isinstance(props[key], bool) else str(props[key])
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "SqsManagedSseEnabled", "DelaySeconds")
            if key in props
        }
        redrive = props.get("RedrivePolicy")
        decls.append(
            QueueDecl(
                logical_id=logical,
                name=resolver.resolve(props["QueueName"]),
                attributes=attributes,
                dead_letter_logical_id=_logical_of(redrive["deadLetterTargetArn"]) if redrive else None,
                max_receive_count=int(redrive["maxReceiveCount"]) if redrive else None,
            )
        )
    return sorted(decls, key=lambda d: d.dead_letter_logical_id is not None)


def subscription_declarations(template: dict[str, Any], resolver: Resolver) -> list[SubscriptionDecl]:
    decls = []
    for logical, res in resources_of(template, "AWS::SNS::Subscription").items():
        if "Condition" in res and not resolver.condition(res["Condition"]):
            continue
        props = res["Properties"]
        decls.append(
            SubscriptionDecl(
                logical_id=logical,
                topic_logical_id=_logical_of(props["TopicArn"]),
                protocol=props["Protocol"],
                endpoint_logical_id=_logical_of(props["Endpoint"]),
                filter_policy=props.get("FilterPolicy"),
                filter_policy_scope=props.get("FilterPolicyScope"),
                raw_message_delivery=bool(props.get("RawMessageDelivery", False)),
            )
        )
    return decls


def function_declarations(template: dict[str, Any], resolver: Resolver) -> list[FunctionDecl]:
    globals_fn = template.get("Globals", {}).get("Function", {})
    decls = []
    for logical, res in resources_of(template, "AWS::Serverless::Function").items():
        props = res["Properties"]
        env = {
            **globals_fn.get("Environment", {}).get("Variables", {}),
            **props.get("Environment", {}).get("Variables", {}),
        }
        sqs_events, schedule = [], None
        for event in props.get("Events", {}).values():
            ep = event.get("Properties", {})
            if event["Type"] == "SQS":
                sqs_events.append(
                    EventSourceDecl(
                        queue_logical_id=_logical_of(ep["Queue"]),
                        batch_size=int(ep.get("BatchSize", 10)),
                        batching_window_s=int(ep.get("MaximumBatchingWindowInSeconds", 0)),
                        report_batch_item_failures="ReportBatchItemFailures" in ep.get("FunctionResponseTypes", []),
                    )
                )
            elif event["Type"] in {"Schedule", "ScheduleV2"}:
                schedule = str(resolver.resolve(ep.get("Schedule") or ep.get("ScheduleExpression")))
        decls.append(
            FunctionDecl(
                logical_id=logical,
                name=resolver.resolve(props["FunctionName"]),
                code_uri=props["CodeUri"],
                handler=props["Handler"],
                timeout=int(props.get("Timeout", globals_fn.get("Timeout", 3))),
                memory=int(props.get("MemorySize", globals_fn.get("MemorySize", 128))),
                environment=env,
                sqs_events=sqs_events,
                schedule=schedule,
                reserved_concurrency=props.get("ReservedConcurrentExecutions"),
            )
        )
    return decls


def bucket_notification(template: dict[str, Any], resolver: Resolver, bucket_logical: str) -> list[dict[str, Any]]:
    """The bucket's QueueConfigurations, as put_bucket_notification_configuration expects them."""
    props = template["Resources"][bucket_logical]["Properties"]
    configs = []
    for qc in props.get("NotificationConfiguration", {}).get("QueueConfigurations", []):
        rules = qc.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        configs.append(
            {
                "QueueArn": resolver.resolve(qc["Queue"]),
                "Events": [qc["Event"]],
                "Filter": {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}},
            }
        )
    return configs


def as_json_attribute(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
