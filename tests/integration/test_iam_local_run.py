"""IAM over a whole local run: every AWS call the handlers make, decided under the calling function's role policy
as the SAM transform deploys it (policy templates expanded), with the condition keys such a request carries.

The run is the default ``make run`` (every source, over the recorded replay), in its own process; the calls are
recorded by ``checks.iam_run``. ``checks/iam_eval.py`` says what the evaluator models and what it does not.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from checks.iam_eval import Call, Request, decide_all, evaluate, function_statements, unique
from checks.sam import package, transform_offline
from localrun.cli import LOCAL_PARAMETERS
from localrun.cloud import LocalCloud, MotoServer
from localrun.template import Resolver, default_parameters, load_template
from tests.support.local_run import full_run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = {"SchedulerFunction", "ExtractorFunction", "TransformerFunction", "ModelerFunction", "NotifierFunction"}


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> list[Call]:
    """The recorded calls of the session's full local run (made once, shared with the report tests)."""
    return [Call(**c) for c in json.loads(full_run(tmp_path_factory).calls.read_text())]


@pytest.fixture(scope="module")
def physical() -> dict:
    """The local stack's physical ids (names and ARNs), as the local runtime creates them."""
    server = MotoServer().start()
    try:
        return copy.deepcopy(
            LocalCloud(server.endpoint, parameter_overrides=LOCAL_PARAMETERS).create().resolver.physical
        )
    finally:
        server.stop()


def statements_of(template: dict, physical: dict) -> dict:
    transformed = transform_offline(package(template), LOCAL_PARAMETERS)
    resolver = Resolver(transformed, default_parameters(transformed, LOCAL_PARAMETERS), physical=dict(physical))
    return function_statements(transformed, resolver)


def denies(calls, template, physical) -> list[str]:
    return unique([d for d in decide_all(calls, statements_of(template, physical)) if d.outcome != "allow"])


def test_every_call_of_a_full_local_run_is_allowed(calls, physical):
    decisions = decide_all(calls, statements_of(load_template(), physical))
    assert {c.function for c in calls} == FUNCTIONS
    assert {c.service for c in calls} >= {"s3", "dynamodb", "sqs", "sns", "ssm", "glue"}
    assert len(calls) > 500
    # S3's 404-or-403 check rides on every object read: ListBucket without any s3:prefix
    assert any(d.request.why == "a missing key answers 404" for d in decisions)
    assert unique([d for d in decisions if d.outcome != "allow"]) == []


def test_a_grant_whose_condition_excludes_getobject_fails_the_run(calls, physical):
    planted = copy.deepcopy(load_template())
    statements = planted["Resources"]["TransformerFunction"]["Properties"]["Policies"][0]["Statement"]
    read_landing = next(s for s in statements if s["Sid"] == "ReadLanding")
    read_landing["Condition"] = {"StringLike": {"s3:prefix": ["landing/*"]}}  # GetObject carries no s3:prefix
    found = denies(calls, planted, physical)
    assert found, "a GetObject grant that GetObject can never satisfy went unnoticed"
    # GetObject, or GetObjectVersion for a versioned read: both only under ReadLanding
    assert all(line.startswith("TransformerFunction s3:GetObject -> s3:GetObject") for line in found)
    assert all("/landing/" in line and line.endswith("implicit deny") for line in found)


def test_listbucket_conditioned_on_a_prefix_turns_a_missing_key_into_access_denied(calls, physical):
    """The grant every function had: S3 then answers GetObject/HeadObject of a missing key with 403, which the lake
    adapter reports as LakeError instead of "missing"."""
    planted = copy.deepcopy(load_template())
    for function in ("ExtractorFunction", "TransformerFunction", "ModelerFunction"):
        statements = planted["Resources"][function]["Properties"]["Policies"][0]["Statement"]
        listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
        listing["Condition"] = {"StringLike": {"s3:prefix": ["landing/*", "staging/*", "marts/*", "quarantine/*"]}}
    found = denies(calls, planted, physical)
    assert found
    assert all("(a missing key answers 404): implicit deny" in line for line in found)
    assert {line.split()[0] for line in found} == {"TransformerFunction", "ModelerFunction"}


ALLOW_GET = {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/*"}
ALLOW_LANDING = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/landing/*"}
DENY_ALL = {"Effect": "Deny", "Action": "*", "Resource": "*"}
LIST_IF_EXISTS = {
    "Effect": "Allow",
    "Action": "s3:ListBucket",
    "Resource": "*",
    "Condition": {"StringLikeIfExists": {"s3:prefix": "a/*"}},
}
LIST_NOT_LIKE = {**LIST_IF_EXISTS, "Condition": {"StringNotLike": {"s3:prefix": "a/*"}}}
SEND_WILDCARD = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:*:*:q?"}


@pytest.mark.parametrize(
    ("statement", "request_", "expected"),
    [
        (ALLOW_GET, ("s3:GetObject", "arn:aws:s3:::b/k"), "allow"),
        (ALLOW_LANDING, ("s3:GetObject", "arn:aws:s3:::b/staging/k"), "implicit deny"),
        (DENY_ALL, ("s3:GetObject", "arn:aws:s3:::b/k"), "explicit deny"),
        (LIST_IF_EXISTS, ("s3:ListBucket", "arn:aws:s3:::b"), "allow"),
        (LIST_NOT_LIKE, ("s3:ListBucket", "arn:aws:s3:::b"), "allow"),
        (SEND_WILDCARD, ("sqs:sendmessage", "arn:aws:sqs:r:1:q1"), "allow"),
    ],
)
def test_the_evaluator_follows_iam_semantics(statement, request_, expected):
    assert evaluate([statement], Request(*request_)) == expected
    if expected == "allow":
        assert evaluate([statement, {"Effect": "Deny", "Action": "*", "Resource": "*"}], Request(*request_)) != "allow"


def test_the_calls_of_paths_a_clean_run_does_not_take_are_allowed_too(physical):
    """The extractor deferring a quota-limited request, the modeler sending a batch back behind the rebuild lock."""
    url = {q: physical[q]["QueueUrl"] for q in ("ExtractQueue", "ModelQueue", "ExtractDLQ")}
    owner = {"QueueOwnerAWSAccountId": "123456789012"}
    paths = [
        Call("ExtractorFunction", "sqs", "GetQueueUrl", {"QueueName": physical["ExtractQueue"]["QueueName"], **owner}),
        Call("ExtractorFunction", "sqs", "ChangeMessageVisibility", {"QueueUrl": url["ExtractQueue"]}),
        Call("ExtractorFunction", "sqs", "SendMessage", {"QueueUrl": url["ExtractDLQ"]}),
        Call("ModelerFunction", "sqs", "GetQueueUrl", {"QueueName": physical["ModelQueue"]["QueueName"], **owner}),
        Call("ModelerFunction", "sqs", "SendMessageBatch", {"QueueUrl": url["ModelQueue"]}),
    ]
    statements = statements_of(load_template(), physical)
    assert unique([d for d in decide_all(paths, statements) if d.outcome != "allow"]) == []
    wrong_queue = [Call("ModelerFunction", "sqs", "SendMessageBatch", {"QueueUrl": url["ExtractQueue"]})]
    assert [d.outcome for d in decide_all(wrong_queue, statements)] == ["implicit deny"]
