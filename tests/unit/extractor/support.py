"""Helpers for the extractor's tests: AWS resources on moto, a replay server, and the handler composed on them.

The handler composes its extractor (settings, ports, idempotent unit) on first use. A test hands it one composed
on its own moto clients and replay server with ``bound_handler`` (the ``bind`` fixture): nothing is patched.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datalake.contracts import ExtractParams, ExtractRequest, Source
from datalake.settings import ExtractorSettings, load_settings
from extractor.queues import ExtractQueues
from extractor.service import Ports, build_extractor, build_ports
from localrun.replay import ReplayServer
from tests.aws_builders import (
    capture_topic,
    clients,
    create_idempotency_table,
    create_lake_bucket,
    create_state_table,
    drain_queue,
)
from tests.conftest import FIXTURES, ROOT

REPLAY = ROOT / "data" / "replay"
PR_2025_02 = FIXTURES / "replay_pr_2025-02"
MISSING_SERIES = FIXTURES / "replay_bls_series_does_not_exist"
EXTRACT_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:test-extract"
API_KEY = "0123456789abcdef" * 2  # a made-up BLS registration key (32 hex digits, like a real one)


@dataclass
class TestAws:
    """moto resources named as tests/conftest.py's TEST_ENV names them."""

    s3: Any
    ddb: Any
    sqs: Any
    sns: Any
    ssm: Any
    bucket: str
    state_table: str
    extract_queue: str
    dlq: str
    events_queue: str

    def dlq_messages(self) -> list[dict[str, Any]]:
        return drain(self.sqs, self.dlq)

    def events(self) -> list[dict[str, Any]]:
        """Pipeline events published so far (each drained once)."""
        return [json.loads(m["Body"]) for m in drain(self.sqs, self.events_queue)]

    def keys(self, prefix: str = "landing/") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def versions(self, prefix: str) -> list[dict[str, Any]]:
        response = self.s3.list_object_versions(Bucket=self.bucket, Prefix=prefix)
        return response.get("Versions", []) + response.get("DeleteMarkers", [])

    def put_api_key(self, value: str = API_KEY) -> str:
        self.ssm.put_parameter(Name=os.environ["BLS_API_KEY_PARAM"], Value=value, Type="SecureString", Overwrite=True)
        return value


class ServedBodies:
    """A replay hook that keeps every BLS API answer's body exactly as the replay sends it on the wire.

    Add it first (the outermost hook), so it sees the answer after any other hook changed it.
    """

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, req: Any, proceed: Any) -> Any:
        answer = proceed()
        if req.endpoint == "bls_api":
            self.bodies.append(answer.body)
        return answer


def response_objects(s3: Any, bucket: str) -> dict[str, bytes]:
    """The stored BLS API response objects (landing/bls_api/_responses/), key -> bytes."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="landing/bls_api/_responses/")
    keys = sorted(o["Key"] for page in pages for o in page.get("Contents", []))
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def create_test_aws() -> TestAws:
    """Inside ``mock_aws``: the extractor's bucket, tables, queues and topic (events captured on a queue)."""
    s3, ddb, sqs, sns, ssm = clients("s3", "dynamodb", "sqs", "sns", "ssm")
    bucket = os.environ["LAKE_BUCKET"]
    create_lake_bucket(s3, bucket)
    create_state_table(ddb, os.environ["STATE_TABLE"])
    create_idempotency_table(ddb, os.environ["IDEMPOTENCY_TABLE"])
    dlq = sqs.create_queue(QueueName="test-extract-dlq")["QueueUrl"]
    extract = sqs.create_queue(
        QueueName="test-extract",
        Attributes={
            "VisibilityTimeout": "1800",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:test-extract-dlq", "maxReceiveCount": 8}
            ),
        },
    )["QueueUrl"]
    assert dlq == os.environ["EXTRACT_DLQ_URL"]
    topic, events = capture_topic(sns, sqs, "test-pipeline", "test-events")
    assert topic == os.environ["PIPELINE_TOPIC_ARN"]
    return TestAws(s3, ddb, sqs, sns, ssm, bucket, os.environ["STATE_TABLE"], extract, dlq, events)


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    return drain_queue(sqs, url)


def quick_session(contact_email: str = "tests@example.org") -> Any:
    """The production session and retry policy with short waits, so retry tests take seconds (Retry-After is still
    honoured)."""
    from extractor.http import new_session, retry_policy, user_agent

    return new_session(user_agent(contact_email), retry_policy(backoff_factor=0.05, backoff_jitter=0.05))


def test_ports(aws: TestAws, settings: ExtractorSettings, read_timeout: float | None = None) -> Ports:
    """The extractor's ports on this test's moto clients, and an HTTP client with quick retries (one session)."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from datalake.events import publish_event
    from datalake.lake import LakeStore
    from datalake.state import StateStore
    from extractor.credentials import CredentialStore
    from extractor.http import HttpClient
    from extractor.queues import ExtractQueues

    http = HttpClient(
        quick_session(settings.contact_email), read_timeout=read_timeout, max_bytes=settings.max_payload_bytes
    )
    return Ports(
        lake=LakeStore(settings.lake_bucket, aws.s3),
        state=StateStore(settings.state_table, aws.ddb),
        queues=ExtractQueues(settings.extract_dlq_url, settings.extract_queue_url, aws.sqs),
        publish=lambda event: publish_event(event, settings.pipeline_topic_arn, aws.sns),
        credentials=CredentialStore(aws.ssm),
        http=lambda: http,
        idempotency=DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=aws.ddb),
    )


@contextmanager
def bound_handler(
    aws: TestAws | None,
    replay: ReplayServer | None,
    environment: dict[str, str] | None = None,
    read_timeout: float | None = None,
    **ports: Any,
) -> Iterator[Any]:
    """The extractor handler serving, for the block, an extractor composed as a fresh container would compose it:
    settings pointing at this test's replay server (if any) and ``environment``, ports on its moto clients (``ports``
    replaces some of them). Without ``aws``, the production ports (the shared clients, the production session)."""
    from extractor import handler

    served = replay.environment() if replay is not None else {}
    settings = load_settings(ExtractorSettings, {**os.environ, **served, **(environment or {})})
    production = build_ports(settings) if aws is None else test_ports(aws, settings, read_timeout)
    composed = replace(production, **ports)
    with handler.extractor.use(build_extractor(settings, handler.config, handler.extract, composed)):
        yield handler


class DeferralSpy(ExtractQueues):
    """The ExtractQueue and DLQ on moto, keeping the seconds of every deferral; ``forward=False`` leaves the
    message's visibility alone (its receipt handle is made up)."""

    def __init__(self, aws: TestAws, forward: bool = True) -> None:
        super().__init__(os.environ["EXTRACT_DLQ_URL"], aws.extract_queue, aws.sqs)
        self.forward = forward
        self.deferred: list[int] = []

    def defer(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        self.deferred.append(seconds)
        if self.forward:
            super().defer(queue_arn, receipt_handle, seconds)


def request(
    source: Source | str,
    dataset: str,
    run_id: str = "20261121T080000Z-0a1b2c3d",
    start_year: int | None = None,
    end_year: int | None = None,
    page_size: int | None = None,
) -> ExtractRequest:
    return ExtractRequest(
        run_id=run_id,
        source=Source(source),
        dataset=dataset,
        params=ExtractParams(start_year=start_year, end_year=end_year, page_size=page_size),
        requested_at=datetime(2026, 11, 21, 8, 0, tzinfo=UTC),
    )


def sqs_record(body: str, message_id: str, receipt_handle: str | None = None, receive_count: int = 1) -> dict:
    """One SQS record of a Lambda event, as Lambda delivers it."""
    now = str(int(time.time() * 1000))
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle or f"handle-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": now,
            "SenderId": "123456789012",
            "ApproximateFirstReceiveTimestamp": now,
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": EXTRACT_QUEUE_ARN,
        "awsRegion": "us-east-1",
    }


def sqs_event(requests: Iterable[ExtractRequest]) -> dict[str, Any]:
    return {"Records": [sqs_record(r.model_dump_json(), f"m-{i}") for i, r in enumerate(requests)]}


def with_run_id(event: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The same batch, as a later run sends it (a new run id, new message ids)."""
    records = []
    for i, record in enumerate(event["Records"]):
        body = json.loads(record["body"])
        body["run_id"] = run_id
        records.append({**record, "body": json.dumps(body), "messageId": f"{run_id}-{i}"})
    return {"Records": records}


def failed_ids(response: dict[str, Any]) -> set[str]:
    return {f["itemIdentifier"] for f in response["batchItemFailures"]}


def replay_dir_with(tmp_path: Path, *sources: tuple[Path, str]) -> Path:
    """A replay folder assembled from parts of others: (folder, sub-path) pairs copied into tmp_path/replay."""
    target = tmp_path / "replay"
    for folder, sub in sources:
        destination = target / sub
        destination.parent.mkdir(parents=True, exist_ok=True)
        if (folder / sub).is_dir():
            shutil.copytree(folder / sub, destination, dirs_exist_ok=True)
        else:
            shutil.copy2(folder / sub, destination)
    target.mkdir(exist_ok=True)
    return target
