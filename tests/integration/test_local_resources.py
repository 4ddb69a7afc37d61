"""The local runtime's resources equal template.yaml's declarations, read straight from the YAML.

The queues, topics, subscriptions to queues, tables, bucket and functions checked here are all the root's own: the
nested stacks (stacks/*.yaml) declare none of them (the first test holds that), and the local catalogue they declare
is checked in tests/unit/transformer/test_glue_schema.py.
"""

from __future__ import annotations

import json

import pytest
import yaml

from localrun.template import ACCOUNT_ID, CATALOG_TEMPLATE, MONITORING_TEMPLATE, REGION, STACK_ID, STACK_NAME, TEMPLATE

pytestmark = pytest.mark.integration

STAGE = "dev"


class _AnyTag(yaml.SafeLoader):
    pass


_AnyTag.add_multi_constructor(
    "!",
    lambda loader, suffix, node: {
        "tag": suffix,
        "value": loader.construct_scalar(node)
        if isinstance(node, yaml.ScalarNode)
        else loader.construct_sequence(node, deep=True)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node, deep=True),
    },
)


@pytest.fixture(scope="module")
def declared() -> dict:
    """The template parsed independently of localrun.template (intrinsics kept as opaque tags)."""
    return yaml.load(TEMPLATE.read_text(), Loader=_AnyTag)["Resources"]  # noqa: S506 - SafeLoader subclass


def physical(sub: dict) -> str:
    """Resolve the template's `!Sub ${AWS::StackName}-${Stage}-...` names for the local stack (a retained
    resource's name also ends in ${StackSuffix}, the stack id's random tail)."""
    assert sub["tag"] == "Sub"
    text = sub["value"][0] if isinstance(sub["value"], list) else sub["value"]
    return (
        text.replace("${StackSuffix}", STACK_ID.split("/")[2].split("-")[4])
        .replace("${AWS::StackName}", STACK_NAME)
        .replace("${Stage}", STAGE)
        .replace("${AWS::AccountId}", ACCOUNT_ID)
    )


def of_type(declared: dict, kind: str) -> dict:
    # Fn::ForEach entries (the alarm families: AWS::LanguageExtensions) are loops, not resources of these kinds.
    return {k: v for k, v in declared.items() if not k.startswith("Fn::ForEach::") and v["Type"] == kind}


CHECKED_HERE = (
    "AWS::SQS::Queue",
    "AWS::SNS::Topic",
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::Serverless::Function",
)


def test_the_nested_stacks_declare_none_of_what_is_checked_here():
    for path in (CATALOG_TEMPLATE, MONITORING_TEMPLATE):
        resources = yaml.load(path.read_text(), Loader=_AnyTag)["Resources"]  # noqa: S506 - SafeLoader subclass
        resources = {k: v for k, v in resources.items() if not k.startswith("Fn::ForEach::")}  # the alarm families
        assert not {v["Type"] for v in resources.values()} & set(CHECKED_HERE), path.name
        subscriptions = [v for v in resources.values() if v["Type"] == "AWS::SNS::Subscription"]
        assert all(s["Properties"]["Protocol"] != "sqs" for s in subscriptions), path.name


def test_every_queue_has_the_declared_attributes_and_redrive(local_cloud, declared):
    sqs = local_cloud.client("sqs")
    queues = of_type(declared, "AWS::SQS::Queue")
    assert len(queues) >= 9
    for logical, res in queues.items():
        props = res["Properties"]
        name = physical(props["QueueName"])
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for key in ("VisibilityTimeout", "MessageRetentionPeriod"):
            if key in props:
                assert attrs[key] == str(props[key]), (logical, key)
        if "RedrivePolicy" in props:
            redrive = json.loads(attrs["RedrivePolicy"])
            dlq_logical = props["RedrivePolicy"]["deadLetterTargetArn"]["value"].split(".")[0]
            dlq_name = physical(queues[dlq_logical]["Properties"]["QueueName"])
            assert redrive["deadLetterTargetArn"] == f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{dlq_name}"
            assert int(redrive["maxReceiveCount"]) == props["RedrivePolicy"]["maxReceiveCount"]
        else:
            assert logical.endswith("DLQ"), f"{logical} has no DLQ"


def test_topics_and_filtered_subscriptions_match(local_cloud, declared):
    sns = local_cloud.client("sns")
    topics = {physical(r["Properties"]["TopicName"]) for r in of_type(declared, "AWS::SNS::Topic").values()}
    existing = {t["TopicArn"].rsplit(":", 1)[1] for t in sns.list_topics()["Topics"]}
    assert topics <= existing
    subscriptions = sns.list_subscriptions()["Subscriptions"]
    for logical, res in of_type(declared, "AWS::SNS::Subscription").items():
        props = res["Properties"]
        if props["Protocol"] != "sqs":
            continue
        queue_logical = props["Endpoint"]["value"].split(".")[0]
        queue_name = physical(declared[queue_logical]["Properties"]["QueueName"])
        topic_logical = props["TopicArn"]["value"]
        topic_name = physical(declared[topic_logical]["Properties"]["TopicName"])
        match = [
            s
            for s in subscriptions
            if s["Endpoint"].endswith(f":{queue_name}") and s["TopicArn"].endswith(f":{topic_name}")
        ]
        assert len(match) == 1, logical
        attributes = sns.get_subscription_attributes(SubscriptionArn=match[0]["SubscriptionArn"])["Attributes"]
        if "FilterPolicy" in props:
            assert json.loads(attributes["FilterPolicy"]) == props["FilterPolicy"], logical
        else:
            assert "FilterPolicy" not in attributes, logical


def test_tables_have_the_declared_keys_and_ttl(local_cloud, declared):
    ddb = local_cloud.client("dynamodb")
    for res in of_type(declared, "AWS::DynamoDB::Table").values():
        props = res["Properties"]
        name = physical(props["TableName"])
        table = ddb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == props["KeySchema"]
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]


def test_bucket_notification_matches_the_template(local_cloud, declared):
    s3 = local_cloud.client("s3")
    (bucket,) = of_type(declared, "AWS::S3::Bucket").values()
    name = physical(bucket["Properties"]["BucketName"])
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    config = s3.get_bucket_notification_configuration(Bucket=name)["QueueConfigurations"]
    (declared_qc,) = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    queue_logical = declared_qc["Queue"]["value"].split(".")[0]
    queue_name = physical(declared[queue_logical]["Properties"]["QueueName"])
    assert len(config) == 1
    assert config[0]["QueueArn"].endswith(f":{queue_name}")
    assert config[0]["Events"] == [declared_qc["Event"]]
    rules = {r["Name"].lower(): r["Value"] for r in config[0]["Filter"]["Key"]["FilterRules"]}
    assert rules == {r["Name"]: r["Value"] for r in declared_qc["Filter"]["S3Key"]["Rules"]}


def test_functions_get_the_declared_environment(local_cloud, declared):
    functions = of_type(declared, "AWS::Serverless::Function")
    assert set(functions) == set(local_cloud.functions)
    shared = yaml.load(TEMPLATE.read_text(), Loader=_AnyTag)["Globals"]["Function"]["Environment"]["Variables"]  # noqa: S506
    for logical, res in functions.items():
        env = local_cloud.function_environment(logical)
        assert set(res["Properties"]["Environment"]["Variables"]) <= set(env), logical
        assert set(shared) <= set(env), logical
        for value in env.values():
            assert "${" not in value, (logical, value)
    extractor = local_cloud.function_environment("ExtractorFunction")
    assert extractor["EXTRACT_DLQ_URL"] == local_cloud.queue_urls["ExtractDLQ"]
    assert extractor["LAKE_BUCKET"] == local_cloud.ref("LakeBucket")
