"""IAM, proven over a run: every AWS call a handler makes, evaluated against its function's role policy.

Three parts:

* ``CallRecorder`` records each botocore API call made while a function's handler runs (service, operation,
  parameters, and which function), by wrapping ``BaseClient._make_api_call`` for the duration of a local run.
* ``request_contexts`` turns a recorded call into the IAM requests AWS authorises for it: the action, the resource
  ARN and the condition keys such a request carries (``s3:prefix`` only on a listing, for instance). A GetObject or
  HeadObject also yields the ListBucket check S3 makes to answer a missing key with 404 rather than 403.
* ``evaluate`` applies AWS's identity-policy logic to one request: an explicit Deny wins, then any Allow whose
  Action, Resource and every Condition match; otherwise the implicit deny.

Why our own evaluator: moto's IAM enforcement ignores Resource and Condition (``moto/iam/access_control.py`` says
so), policyuniverse and parliament parse and lint policies but do not decide a request, iam-ape computes effective
permissions from an account's authorization details without a request context, and aws-iam-tester calls IAM's
policy simulator in a real account. What this evaluator does NOT model: resource-based policies (bucket, queue,
topic and KMS key policies), SCPs, permission boundaries, session policies, policy variables (``${aws:...}``),
global condition keys other than the request's own service keys, and the managed policies SAM attaches
(AWSLambdaBasicExecutionRole and the X-Ray ones): the handlers make no logs or X-Ray API calls themselves.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"

_current_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("iam_eval_function", default=None)


@dataclass(frozen=True)
class Call:
    function: str
    service: str
    operation: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Request:
    """One authorisation request: what IAM is asked for one call."""

    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)
    why: str = ""


@dataclass
class CallRecorder:
    calls: list[Call] = field(default_factory=list)

    @contextmanager
    def attributed_to(self, function: str) -> Iterator[None]:
        """Calls made inside this block are the function's."""
        token = _current_function.set(function)
        try:
            yield
        finally:
            _current_function.reset(token)

    @contextmanager
    def recording(self) -> Iterator[CallRecorder]:
        """Record every botocore call made inside ``attributed_to`` blocks (other calls are the runtime's own)."""
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        recorder = self

        def make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            function = _current_function.get()
            if function is not None:
                service = client.meta.service_model.service_name
                recorder.calls.append(Call(function, service, operation_name, dict(api_params)))
            return original(client, operation_name, api_params)

        BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        try:
            yield self
        finally:
            BaseClient._make_api_call = original  # type: ignore[method-assign]


# -- calls -> IAM requests ---------------------------------------------------------------------------------------
_S3_OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "DeleteObject": "s3:DeleteObject",
    "GetObjectTagging": "s3:GetObjectTagging",
}
_SQS_ACTIONS = {
    "SendMessageBatch": "sqs:SendMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
_TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}


class UnmappedCall(ValueError):
    """A recorded call this module cannot turn into IAM requests (extend ``request_contexts``)."""


def _queue_arn(url: str) -> str:
    account, name = url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{REGION}:{account}:{name}"


def _s3(call: Call) -> list[Request]:
    p, op = call.params, call.operation
    bucket = p.get("Bucket", "")
    if op in _S3_OBJECT_ACTIONS:
        action = _S3_OBJECT_ACTIONS[op]
        if op in {"GetObject", "HeadObject"} and p.get("VersionId"):
            action = "s3:GetObjectVersion"
        requests = [Request(action, f"arn:aws:s3:::{bucket}/{p['Key']}")]
        if op in {"GetObject", "HeadObject"}:
            # S3 answers a missing key with 404 only if the caller may list the bucket; that check carries no
            # s3:prefix (the request has none), so a ListBucket grant conditioned on it yields 403 instead.
            requests.append(Request("s3:ListBucket", f"arn:aws:s3:::{bucket}", {}, "a missing key answers 404"))
        return requests
    if op == "CopyObject":
        source = p["CopySource"]
        source = source if isinstance(source, str) else f"{source['Bucket']}/{source['Key']}"
        return [
            Request("s3:PutObject", f"arn:aws:s3:::{bucket}/{p['Key']}"),
            Request("s3:GetObject", f"arn:aws:s3:::{source.lstrip('/')}"),
        ]
    if op == "DeleteObjects":
        return [Request("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{o['Key']}") for o in p["Delete"]["Objects"]]
    if op in {"ListObjectsV2", "ListObjects"}:
        context = {"s3:prefix": p["Prefix"]} if "Prefix" in p else {}
        if "Delimiter" in p:
            context["s3:delimiter"] = p["Delimiter"]
        return [Request("s3:ListBucket", f"arn:aws:s3:::{bucket}", context)]
    if op == "ListObjectVersions":
        context = {"s3:prefix": p["Prefix"]} if "Prefix" in p else {}
        return [Request("s3:ListBucketVersions", f"arn:aws:s3:::{bucket}", context)]
    if op == "HeadBucket":
        return [Request("s3:ListBucket", f"arn:aws:s3:::{bucket}")]
    raise UnmappedCall(f"s3 {op}")


def _dynamodb(call: Call) -> list[Request]:
    p, op = call.params, call.operation

    def table(name: str, index: str | None = None) -> str:
        arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
        return f"{arn}/index/{index}" if index else arn

    if op in {"BatchWriteItem", "BatchGetItem"}:
        return [Request(f"dynamodb:{op}", table(name)) for name in p["RequestItems"]]
    if op in {"TransactWriteItems", "TransactGetItems"}:
        requests = []
        for item in p["TransactItems"]:
            ((kind, body),) = item.items()
            requests.append(Request(_TRANSACT_ACTIONS[kind], table(body["TableName"])))
        return requests
    if "TableName" in p:
        # dynamodb:LeadingKeys: the partition key value of a single-item request (our tables key on "pk" or "id")
        item = p.get("Key") or p.get("Item") or {}
        leading = next((v for k, v in item.items() if k in {"pk", "id"}), None)
        context = {"dynamodb:LeadingKeys": [next(iter(leading.values()))]} if isinstance(leading, dict) else {}
        return [Request(f"dynamodb:{op}", table(p["TableName"], p.get("IndexName")), context)]
    raise UnmappedCall(f"dynamodb {op}")


def _sqs(call: Call) -> list[Request]:
    p, op = call.params, call.operation
    if op == "GetQueueUrl":
        account = p.get("QueueOwnerAWSAccountId", ACCOUNT)
        return [Request("sqs:GetQueueUrl", f"arn:aws:sqs:{REGION}:{account}:{p['QueueName']}")]
    if "QueueUrl" in p:
        return [Request(_SQS_ACTIONS.get(op, f"sqs:{op}"), _queue_arn(p["QueueUrl"]))]
    raise UnmappedCall(f"sqs {op}")


def _sns(call: Call) -> list[Request]:
    if call.operation in {"Publish", "PublishBatch"} and "TopicArn" in call.params:
        return [Request("sns:Publish", call.params["TopicArn"])]
    raise UnmappedCall(f"sns {call.operation}")


def _ssm(call: Call) -> list[Request]:
    names = call.params.get("Names") or [call.params.get("Name")]
    if call.operation in {"GetParameter", "GetParameters"} and all(names):
        arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter"
        return [Request(f"ssm:{call.operation}", f"{arn}{n if n.startswith('/') else '/' + n}") for n in names]
    raise UnmappedCall(f"ssm {call.operation}")


def _glue(call: Call) -> list[Request]:
    p, op = call.params, call.operation
    database = p.get("DatabaseName") or p.get("Name")
    resources = [f"arn:aws:glue:{REGION}:{ACCOUNT}:catalog"]
    if database:
        resources.append(f"arn:aws:glue:{REGION}:{ACCOUNT}:database/{database}")
    table = p.get("Name") if "DatabaseName" in p else None
    table = table or p.get("TableInput", {}).get("Name")
    if table:
        resources.append(f"arn:aws:glue:{REGION}:{ACCOUNT}:table/{database}/{table}")
    return [Request(f"glue:{op}", resource) for resource in resources]


_MAPPERS = {"s3": _s3, "dynamodb": _dynamodb, "sqs": _sqs, "sns": _sns, "ssm": _ssm, "glue": _glue}


def request_contexts(call: Call) -> list[Request]:
    """The IAM requests AWS authorises for one call.

    Raises
    ------
    UnmappedCall
        For a service or operation not mapped here.
    """
    mapper = _MAPPERS.get(call.service)
    if mapper is None:
        raise UnmappedCall(f"{call.service} {call.operation}")
    return mapper(call)


# -- policy evaluation -------------------------------------------------------------------------------------------
def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    """IAM wildcards: ``*`` any run of characters, ``?`` one character (no other special characters)."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _operator_matches(operator: str, expected: list[Any], actual: Any) -> bool:
    base = operator.removesuffix("IfExists")
    values = [str(v) for v in _as_list(actual)]
    wanted = [str(v) for v in expected]
    tests = {
        "StringEquals": lambda v: v in wanted,
        "StringEqualsIgnoreCase": lambda v: v.lower() in {w.lower() for w in wanted},
        "StringLike": lambda v: any(_glob(w, v) for w in wanted),
        "ArnEquals": lambda v: v in wanted,
        "ArnLike": lambda v: any(_glob(w, v) for w in wanted),
        "Bool": lambda v: v.lower() in {w.lower() for w in wanted},
        "NumericEquals": lambda v: any(float(v) == float(w) for w in wanted),
        "NumericLessThan": lambda v: any(float(v) < float(w) for w in wanted),
        "NumericLessThanEquals": lambda v: any(float(v) <= float(w) for w in wanted),
        "NumericGreaterThan": lambda v: any(float(v) > float(w) for w in wanted),
        "NumericGreaterThanEquals": lambda v: any(float(v) >= float(w) for w in wanted),
    }
    negated = {
        "StringNotEquals": "StringEquals",
        "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
        "StringNotLike": "StringLike",
        "ArnNotEquals": "ArnEquals",
        "ArnNotLike": "ArnLike",
        "NumericNotEquals": "NumericEquals",
    }
    if base in negated:
        return not any(tests[negated[base]](v) for v in values)
    if base not in tests:
        raise ValueError(f"condition operator {operator} is not modelled")
    return any(tests[base](v) for v in values)


def _condition_matches(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    """Every operator and key must match. A key the request does not carry fails the test, except under
    ``...IfExists`` (then it matches), ``Null: true``, and the negated operators (nothing to contradict)."""
    for operator, keys in condition.items():
        for key, expected in keys.items():
            present = key in context
            if operator == "Null":
                if (str(_as_list(expected)[0]).lower() == "true") == present:
                    return False
                continue
            qualifier, _, bare = operator.rpartition(":")
            if not present:
                if bare.endswith("IfExists") or "Not" in bare or qualifier == "ForAllValues":
                    continue
                return False
            if not _operator_matches(bare, _as_list(expected), context[key]):
                return False
    return True


def _statement_matches(statement: dict[str, Any], request: Request) -> bool:
    if "Action" in statement:
        if not any(_glob(a, request.action, case_sensitive=False) for a in _as_list(statement["Action"])):
            return False
    elif any(_glob(a, request.action, case_sensitive=False) for a in _as_list(statement.get("NotAction", []))):
        return False
    if "Resource" in statement:
        if not any(_glob(r, request.resource) for r in _as_list(statement["Resource"])):
            return False
    elif any(_glob(r, request.resource) for r in _as_list(statement.get("NotResource", []))):
        return False
    return _condition_matches(statement.get("Condition", {}), request.context)


def evaluate(statements: list[dict[str, Any]], request: Request) -> str:
    """``"allow"``, ``"explicit deny"`` or ``"implicit deny"`` for one request under identity-policy statements."""
    matching = [s for s in statements if _statement_matches(s, request)]
    if any(s.get("Effect") == "Deny" for s in matching):
        return "explicit deny"
    if any(s.get("Effect") == "Allow" for s in matching):
        return "allow"
    return "implicit deny"


# -- the template's function policies ---------------------------------------------------------------------------
def function_statements(transformed: dict[str, Any], resolver: Any) -> dict[str, list[dict[str, Any]]]:
    """Each function's inline role statements, from the SAM-transformed template, intrinsics resolved.

    ``resolver`` is a ``localrun.template.Resolver`` whose physical ids are those of the local stack.
    """
    by_function = {}
    for logical, res in transformed["Resources"].items():
        if res["Type"] != "AWS::Lambda::Function":
            continue
        role = res["Properties"]["Role"]["Fn::GetAtt"][0]
        statements: list[dict[str, Any]] = []
        for policy in transformed["Resources"][role]["Properties"].get("Policies", []):
            document = resolver.resolve(policy["PolicyDocument"])
            statements.extend(_as_list(document.get("Statement", [])))
        by_function[logical] = statements
    return by_function


@dataclass(frozen=True)
class Decision:
    call: Call
    request: Request
    outcome: str

    def __str__(self) -> str:
        why = f" ({self.request.why})" if self.request.why else ""
        context = f" with {self.request.context}" if self.request.context else ""
        return (
            f"{self.call.function} {self.call.service}:{self.call.operation} -> {self.request.action} on "
            f"{self.request.resource}{context}{why}: {self.outcome}"
        )


def decide_all(calls: list[Call], statements: dict[str, list[dict[str, Any]]]) -> list[Decision]:
    """Every request of every recorded call, decided under its function's statements."""
    decisions = []
    for call in calls:
        for request in request_contexts(call):
            decisions.append(Decision(call, request, evaluate(statements.get(call.function, []), request)))
    return decisions


def unique(decisions: list[Decision]) -> list[str]:
    """The decisions as distinct lines (a run makes the same call many times)."""
    return sorted({str(d) for d in decisions})
