"""Moto resources shaped like the template's declarations, for tests that build their own AWS inside ``mock_aws``.

One home for the moto set-up every test tier shares: the state and idempotency tables, the versioned lake bucket,
and a topic whose messages a queue captures.
"""

from __future__ import annotations

from typing import Any

from datalake.aws import session

ACCOUNT = "123456789012"
REGION = "us-east-1"


def clients(*services: str, **options: Any) -> tuple[Any, ...]:
    """Clients of one new session, in the order named. Its SDK models come from the loader the code under test
    uses (``datalake.aws.session``), so a test does not parse them again: under moto, every test would otherwise
    make a fresh default session and load each model anew. ``options`` go to every client (``region_name``,
    ``endpoint_url``, ``config``)."""
    made = session()
    return tuple(made.client(service, **options) for service in services)


def create_state_table(ddb: Any, name: str) -> str:
    """The state table: ``pk``/``sk`` strings, on demand (as ``StateTable`` in template.yaml)."""
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def create_idempotency_table(ddb: Any, name: str) -> str:
    """Powertools' idempotency table: ``id`` string, on demand (as ``IdempotencyTable`` in template.yaml)."""
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def create_lake_bucket(s3: Any, name: str) -> str:
    """The lake bucket, versioned (as ``LakeBucket`` in template.yaml)."""
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def capture_topic(sns: Any, sqs: Any, topic_name: str, queue_name: str, raw: bool = True) -> tuple[str, str]:
    """A topic, and a queue that receives everything published to it (raw messages unless ``raw`` is False).

    Returns
    -------
    (topic ARN, queue URL)
    """
    topic = sns.create_topic(Name=topic_name)["TopicArn"]
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name}",
        Attributes={"RawMessageDelivery": "true" if raw else "false"},
    )
    return topic, url


def drain_queue(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message waiting in a queue, received with all its attributes and deleted (what a test inspects)."""
    messages: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return messages
        messages.extend(got)
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
        )
