"""The modeler's AWS, in-process (moto's mock_aws: no sockets): the lake bucket, the state table, the pipeline
topic with a queue capturing every event the modeler publishes."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from tests.aws_builders import capture_topic, clients, create_lake_bucket, create_state_table, drain_queue
from tests.unit.modeler.staging_builder import StagingLake


@dataclass
class ModelerAws:
    s3: Any
    ddb: Any
    sqs: Any
    bucket: str
    events_url: str
    staging: StagingLake

    def mart(self, key: str, version_id: str | None = None) -> pa.Table:
        kwargs = {"VersionId": version_id} if version_id else {}
        body = self.s3.get_object(Bucket=self.bucket, Key=key, **kwargs)["Body"].read()
        return pq.read_table(io.BytesIO(body))

    def partitioned(self, prefix: str) -> pa.Table:
        """A partitioned mart read whole, its partition values (``survey=pr/year=2024``) added back as columns."""
        tables = []
        for key in self.keys(prefix):
            table = pq.read_table(io.BytesIO(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()))
            for segment in key[len(prefix) :].split("/")[:-1]:
                name, _, value = segment.partition("=")
                column = pa.array([int(value) if name == "year" else value] * table.num_rows)
                table = table.append_column(name, column.cast(pa.int32()) if name == "year" else column)
            tables.append(table)
        return pa.concat_tables(tables)

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def all_versions(self, prefix: str) -> list[tuple[str, str]]:
        """(key, version id) of every version of every object under a prefix (a partitioned mart's history)."""
        listed = self.s3.list_object_versions(Bucket=self.bucket, Prefix=prefix)
        return sorted((v["Key"], v["VersionId"]) for v in listed.get("Versions", []))

    def head(self, key: str) -> dict:
        return self.s3.head_object(Bucket=self.bucket, Key=key)

    def versions(self, key: str) -> list[str]:
        listed = self.s3.list_object_versions(Bucket=self.bucket, Prefix=key).get("Versions", [])
        return [v["VersionId"] for v in listed if v["Key"] == key]

    def json(self, key: str) -> dict:
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def text(self, key: str) -> str:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()

    def events(self) -> list[dict]:
        """Every pipeline event published since the last call (drains the capture queue)."""
        return [json.loads(m["Body"]) for m in drain_queue(self.sqs, self.events_url)]

    def state_item(self, pk: str, sk: str) -> dict | None:
        from datalake.state import from_item

        item = self.ddb.get_item(TableName=os.environ["STATE_TABLE"], Key={"pk": {"S": pk}, "sk": {"S": sk}})
        return from_item(item["Item"]) if "Item" in item else None


@contextmanager
def modeler_moto() -> Iterator[ModelerAws]:
    """moto, in-process: the versioned lake bucket, the state table, and the pipeline topic captured on a queue."""
    with mock_aws():
        s3, ddb, sqs, sns = clients("s3", "dynamodb", "sqs", "sns")
        bucket = os.environ["LAKE_BUCKET"]
        create_lake_bucket(s3, bucket)
        create_state_table(ddb, os.environ["STATE_TABLE"])
        topic, events_url = capture_topic(
            sns, sqs, os.environ["PIPELINE_TOPIC_ARN"].rsplit(":", 1)[1], "captured-events"
        )
        assert topic == os.environ["PIPELINE_TOPIC_ARN"]
        yield ModelerAws(s3, ddb, sqs, bucket, events_url, StagingLake(s3, bucket))


@pytest.fixture
def modeler_aws():
    with modeler_moto() as kit:
        yield kit


@pytest.fixture
def modeler_handler(modeler_aws):
    from modeler import handler

    return handler
