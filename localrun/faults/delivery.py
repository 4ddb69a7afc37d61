"""Delivery faults around the runner: every message of a queue delivered ``copies`` times (new messages with the
same body, as S3 and SNS duplicates are), and poison messages put into a queue beside the real ones."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from localrun.faults.spec import DeliveryFault

if TYPE_CHECKING:
    from localrun.runner import Runner


def poison_body(queue: str, bucket: str, topic_arn: str) -> str:
    """A message that breaks the contract of its queue, in the shape its producer would use."""
    if queue == "ExtractQueue":
        return json.dumps({"run_id": "not-a-run", "source": "bls_api", "dataset": "../../etc/passwd"})
    if queue == "TransformQueue":  # a manifest that was never written
        key = "landing/datausa/population/ingest_date=2000-01-01/20000101T000000Z-000000000000.manifest.json"
        return json.dumps(
            {
                "Records": [
                    {
                        "eventVersion": "2.1",
                        "eventSource": "aws:s3",
                        "awsRegion": "us-east-1",
                        "eventTime": "2000-01-01T00:00:00.000Z",
                        "eventName": "ObjectCreated:Put",
                        "s3": {
                            "s3SchemaVersion": "1.0",
                            "configurationId": "poison",
                            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                            "object": {"key": key, "size": 100, "eTag": "0" * 32, "sequencer": "00"},
                        },
                    }
                ]
            }
        )
    message = '{"event_type": "dataset.staged", "run_id": "poison"' if queue == "ModelQueue" else "not json {"
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "00000000-0000-4000-8000-000000000000",
            "TopicArn": topic_arn,
            "Message": message,
            "Timestamp": "2000-01-01T00:00:00.000Z",
            "SignatureVersion": "1",
            "Signature": "poison",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/poison.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {"event_type": {"Type": "String", "Value": "dataset.staged"}},
        }
    )


class DeliveryFaults:
    """Duplicates every message received from a queue, and seeds poison messages."""

    def __init__(self, faults: list[DeliveryFault]) -> None:
        self.duplicates = {f.queue: f.copies for f in faults if f.kind == "duplicate"}
        self.poisons = [f for f in faults if f.kind == "poison"]
        self.copies_sent: Counter[str] = Counter()
        self.poison_ids: dict[str, str] = {}  # message id -> queue
        self._copies: set[str] = set()
        self._copied: set[str] = set()

    def install(self, runner: Runner) -> None:
        cloud = runner.cloud
        sqs = cloud.client("sqs")
        for fault in self.poisons:
            body = fault.body or poison_body(fault.queue, cloud.ref("LakeBucket"), cloud.ref("PipelineTopic"))
            sent = sqs.send_message(QueueUrl=cloud.queue_urls[fault.queue], MessageBody=body)
            self.poison_ids[sent["MessageId"]] = fault.queue
        if not self.duplicates:
            return
        receive = runner._receive

        def receive_with_duplicates(queue: str, batch_size: int) -> list[dict[str, Any]]:
            messages = receive(queue, batch_size)
            copies = self.duplicates.get(queue)
            if copies:
                for message in messages:
                    self._duplicate(sqs, cloud.queue_urls[queue], queue, message, copies)
            return messages

        runner._receive = receive_with_duplicates  # type: ignore[method-assign]

    def _duplicate(self, sqs: Any, url: str, queue: str, message: dict[str, Any], copies: int) -> None:
        message_id = message["MessageId"]
        if message_id in self._copies or message_id in self._copied:
            return  # a copy, or an original already copied on an earlier receive
        self._copied.add(message_id)
        attributes = {
            name: {k: v for k, v in value.items() if k in ("StringValue", "BinaryValue", "DataType")}
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        for _ in range(copies - 1):
            kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": message["Body"]}
            if attributes:
                kwargs["MessageAttributes"] = attributes
            self._copies.add(sqs.send_message(**kwargs)["MessageId"])
            self.copies_sent[queue] += 1

    def report(self) -> dict[str, Any]:
        return {
            "duplicates": {q: {"copies": c, "sent": self.copies_sent[q]} for q, c in self.duplicates.items()},
            "poison": sorted(self.poison_ids.values()),
        }
