"""The embedded AWS: moto's server on 127.0.0.1, with the template's resources created in it.

moto's CloudFormation skips queue policies, SNS subscriptions, bucket notifications and alarms, so the
resources are created here with boto3 calls, read from the declarations of template.yaml and its nested stacks
(one merged view: ``localrun.template.load_template``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests
from moto.server import ThreadedMotoServer

from localrun.template import (
    ACCOUNT_ID,
    REGION,
    FunctionDecl,
    QueueDecl,
    Resolver,
    SubscriptionDecl,
    as_json_attribute,
    bucket_notification,
    default_parameters,
    function_declarations,
    load_template,
    queue_declarations,
    resources_of,
    subscription_declarations,
)

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's convention; not a secret
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cache_moto_module_listing() -> None:
    """moto's dispatcher lists its own package folder (os.listdir plus an isdir per entry) on every request to
    match the Host header; the folder does not change while we run, so list it once. Saves ~1 ms a call."""
    import moto.backends

    if getattr(moto.backends.list_of_moto_modules, "cached", False):
        return
    modules = tuple(moto.backends.list_of_moto_modules())

    def listed() -> tuple[str, ...]:
        return modules

    listed.cached = True  # type: ignore[attr-defined]
    moto.backends.list_of_moto_modules = listed


class MotoServer:
    """moto's server in a thread of this process, on a free loopback port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        _cache_moto_module_listing()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        """Start on a clean slate: moto's backends are process-wide, so an earlier server's state is reset."""
        self._server.start()
        self.reset()
        return self

    def reset(self) -> None:
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        self._server.stop()


@dataclass
class LocalCloud:
    """The template's resources, created on an AWS endpoint (the local moto server)."""

    endpoint: str
    template: dict[str, Any] = field(default_factory=load_template)
    parameter_overrides: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.resolver = Resolver(self.template, default_parameters(self.template, self.parameter_overrides))
        self.queues: dict[str, QueueDecl] = {}
        self.queue_urls: dict[str, str] = {}
        self.functions: dict[str, FunctionDecl] = {}
        self.subscriptions: list[SubscriptionDecl] = []
        self.inboxes: dict[str, str] = {}  # topic logical id -> local inbox queue standing in for email
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    # -- clients --------------------------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        """One client per service, made on first use (boto3 clients are thread-safe; making one costs ~20 ms)."""
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = boto3.client(
                    service,
                    endpoint_url=self.endpoint,
                    region_name=REGION,
                    aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                    aws_session_token=LOCAL_CREDENTIALS["AWS_SESSION_TOKEN"],
                )
            return self._clients[service]

    def environment(self) -> dict[str, str]:
        """Process environment shared by every local function: credentials and the endpoint."""
        return {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    # -- creation -------------------------------------------------------------------------------------------
    def create(self, preload: Callable[[LocalCloud], bool | None] | None = None) -> LocalCloud:
        """Create every resource the local runtime needs, in dependency order.

        ``preload`` runs after the buckets and tables exist but before the bucket notifications are configured,
        so restoring a lake from disk does not replay its old landings into the TransformQueue. It returns True
        when it restored an earlier run's lake: the stack "exists already", so S3's one-off ``s3:TestEvent``
        (sent when a notification configuration is first put, i.e. at deploy) is not sent again.
        """
        self._create_queues()
        self._create_topics()
        self._create_tables()
        self._create_buckets()
        self._create_catalog()
        self._declare_functions()
        existed = bool(preload(self)) if preload is not None else False
        self._configure_notifications(deployed_before=existed)
        self._create_subscriptions()
        self._apply_queue_policies()
        return self

    def _create_queues(self) -> None:
        sqs = self.client("sqs")
        for decl in queue_declarations(self.template, self.resolver):
            attributes = dict(decl.attributes)
            if decl.dead_letter_logical_id:
                attributes["RedrivePolicy"] = as_json_attribute(
                    {
                        "deadLetterTargetArn": self.resolver.get_att(decl.dead_letter_logical_id, "Arn"),
                        "maxReceiveCount": decl.max_receive_count,
                    }
                )
            url = sqs.create_queue(QueueName=decl.name, Attributes=attributes)["QueueUrl"]
            arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{decl.name}"
            self.resolver.physical[decl.logical_id] = {"Ref": url, "Arn": arn, "QueueName": decl.name, "QueueUrl": url}
            self.queues[decl.logical_id] = decl
            self.queue_urls[decl.logical_id] = url

    def _create_topics(self) -> None:
        sns = self.client("sns")
        for logical, res in resources_of(self.template, "AWS::SNS::Topic").items():
            name = self.resolver.resolve(res["Properties"]["TopicName"])
            arn = sns.create_topic(Name=name)["TopicArn"]
            self.resolver.physical[logical] = {"Ref": arn, "TopicArn": arn, "TopicName": name}

    def _create_tables(self) -> None:
        ddb = self.client("dynamodb")
        for logical, res in resources_of(self.template, "AWS::DynamoDB::Table").items():
            props = self.resolver.resolve(res["Properties"])
            name = props["TableName"]
            ddb.create_table(
                TableName=name,
                KeySchema=props["KeySchema"],
                AttributeDefinitions=props["AttributeDefinitions"],
                BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
            )
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                ddb.update_time_to_live(
                    TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
                )
            self.resolver.physical[logical] = {
                "Ref": name,
                "Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}",
            }

    def _create_buckets(self) -> None:
        s3 = self.client("s3")
        for logical, res in resources_of(self.template, "AWS::S3::Bucket").items():
            props = self.resolver.resolve(res["Properties"])
            name = props["BucketName"]
            s3.create_bucket(Bucket=name)
            self.resolver.physical[logical] = {
                "Ref": name,
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
            }
            if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
                s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            if "BucketEncryption" in props:
                s3.put_bucket_encryption(
                    Bucket=name,
                    ServerSideEncryptionConfiguration={
                        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                    },
                )
            if "PublicAccessBlockConfiguration" in props:
                s3.put_public_access_block(
                    Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
                )

    def _create_catalog(self) -> None:
        """Glue database and tables, Athena workgroup and named queries (moto's CloudFormation skips Glue)."""
        glue, athena = self.client("glue"), self.client("athena")
        for logical, res in resources_of(self.template, "AWS::Glue::Database").items():
            props = self.resolver.resolve(res["Properties"])
            glue.create_database(DatabaseInput=props["DatabaseInput"])
            self.resolver.physical[logical] = {"Ref": props["DatabaseInput"]["Name"]}
        for logical, res in resources_of(self.template, "AWS::Glue::Table").items():
            props = self.resolver.resolve(res["Properties"])
            glue.create_table(DatabaseName=props["DatabaseName"], TableInput=props["TableInput"])
            self.resolver.physical[logical] = {"Ref": props["TableInput"]["Name"]}
        for logical, res in resources_of(self.template, "AWS::Athena::WorkGroup").items():
            props = self.resolver.resolve(res["Properties"])
            athena.create_work_group(
                Name=props["Name"],
                Description=props.get("Description", ""),
                Configuration=props.get("WorkGroupConfiguration", {}),
            )
            self.resolver.physical[logical] = {"Ref": props["Name"]}
        for logical, res in resources_of(self.template, "AWS::Athena::NamedQuery").items():
            props = self.resolver.resolve(res["Properties"])
            query_id = athena.create_named_query(
                Name=props["Name"],
                Database=props["Database"],
                QueryString=props["QueryString"],
                Description=props.get("Description", ""),
                WorkGroup=props.get("WorkGroup", "primary"),
            )["NamedQueryId"]
            self.resolver.physical[logical] = {"Ref": query_id, "NamedQueryId": query_id}

    def _configure_notifications(self, deployed_before: bool = False) -> None:
        s3 = self.client("s3")
        for logical in resources_of(self.template, "AWS::S3::Bucket"):
            configs = bucket_notification(self.template, self.resolver, logical)
            if configs:
                s3.put_bucket_notification_configuration(
                    Bucket=self.resolver.physical[logical]["Ref"],
                    NotificationConfiguration={"QueueConfigurations": configs},
                )
                if deployed_before:
                    self._drop_s3_test_events(configs)

    def _drop_s3_test_events(self, configs: list[dict[str, Any]]) -> None:
        """Remove the ``s3:TestEvent`` moto just sent to each notified queue (nothing else is in them yet)."""
        sqs = self.client("sqs")
        by_arn = {self.arn(logical): url for logical, url in self.queue_urls.items()}
        for config in configs:
            url = by_arn.get(config["QueueArn"])
            if url is None:
                continue
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                if json.loads(message["Body"]).get("Event") == "s3:TestEvent":
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                else:
                    sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )

    def _create_subscriptions(self) -> None:
        sns = self.client("sns")
        for decl in subscription_declarations(self.template, self.resolver):
            if decl.protocol == "email":
                self._subscribe_inbox(decl)
                continue
            if decl.protocol != "sqs":
                continue
            attributes = {"RawMessageDelivery": str(decl.raw_message_delivery).lower()}
            if decl.filter_policy is not None:
                attributes["FilterPolicy"] = json.dumps(decl.filter_policy)
                attributes["FilterPolicyScope"] = decl.filter_policy_scope or "MessageAttributes"
            sns.subscribe(
                TopicArn=self.resolver.physical[decl.topic_logical_id]["Ref"],
                Protocol="sqs",
                Endpoint=self.resolver.get_att(decl.endpoint_logical_id, "Arn"),
                Attributes=attributes,
            )
            self.subscriptions.append(decl)

    def _subscribe_inbox(self, decl: SubscriptionDecl) -> None:
        """An email subscription becomes a local inbox queue, printed by the runner: what people would read."""
        sqs, sns = self.client("sqs"), self.client("sns")
        topic_arn = self.resolver.physical[decl.topic_logical_id]["Ref"]
        name = f"{topic_arn.rsplit(':', 1)[1]}-inbox"
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}",
            Attributes={"RawMessageDelivery": "true"},
        )
        self.inboxes[decl.topic_logical_id] = url

    def _apply_queue_policies(self) -> None:
        sqs = self.client("sqs")
        for res in resources_of(self.template, "AWS::SQS::QueuePolicy").values():
            props = self.resolver.resolve(res["Properties"])
            for url in props["Queues"]:
                sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})

    def _declare_functions(self) -> None:
        for decl in function_declarations(self.template, self.resolver):
            self.functions[decl.logical_id] = decl
            self.resolver.physical[decl.logical_id] = {
                "Ref": decl.name,
                "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{decl.name}",
            }

    # -- lookups --------------------------------------------------------------------------------------------
    def function_environment(self, logical_id: str) -> dict[str, str]:
        """The function's environment as Lambda would see it, resolved against the local resources."""
        env = self.resolver.resolve(self.functions[logical_id].environment)
        return {k: str(v) for k, v in env.items()}

    def ref(self, logical_id: str) -> str:
        return self.resolver.physical[logical_id]["Ref"]

    def arn(self, logical_id: str) -> str:
        return self.resolver.physical[logical_id]["Arn"]

    def dead_letter_of(self, queue_logical_id: str) -> str | None:
        return self.queues[queue_logical_id].dead_letter_logical_id

    def queue_counts(self, logical_id: str) -> tuple[int, int]:
        """(visible, in flight) messages of a queue."""
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_urls[logical_id],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def apply_environment(env: dict[str, str]) -> None:
    os.environ.update(env)
