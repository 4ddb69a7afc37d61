"""The transformer's test kit: moto AWS (in-process), landings committed exactly per docs/contracts.md, events.

A landing is written as the extractor writes it: every part first (raw bytes as received, object metadata), each
listed in the manifest with its sha256, size and record count; the manifest last. A bulk sync writes the mirrored
files in place (versioned bucket) and pins each part to the version it wrote. A BLS API series points at the
response bodies it came from (one per year window), stored once under ``landing/bls_api/_responses/`` for all the
series they hold, and selects its series from each.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pyarrow as pa
import pyarrow.parquet as pq
from moto import mock_aws

from datalake.contracts import FileChange, Manifest, ManifestPart, Source
from datalake.layout import bls_api_response_key, bulk_mirror_key, landing_key, landing_part_key, manifest_key
from tests.aws_builders import (
    capture_topic,
    clients,
    create_idempotency_table,
    create_lake_bucket,
    create_state_table,
    drain_queue,
)

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "transformer"
PR_2026 = ROOT / "data" / "replay" / "bls_bulk" / "pr"
PR_2025 = ROOT / "tests" / "fixtures" / "replay_pr_2025-02" / "bls_bulk" / "pr"
EVENTS = ROOT / "events"

RUN_ID = "20261121T080000Z-0a1b2c3d"
MOMENT = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
ACCOUNT = "123456789012"


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def bls_series_document(response: dict[str, Any], series_id: str) -> bytes:
    """A BLS API body narrowed to one series, as the extractor landed it before responses were stored as received
    (such landings, at the series' own prefix and without ``select_series``, still stage)."""
    series = next(s for s in response["Results"]["series"] if s["seriesID"] == series_id)
    envelope = {
        "status": response["status"],
        "responseTime": response.get("responseTime"),
        "message": response.get("message", []),
        "Results": {"series": [series]},
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def api_response(series_id: str, observations: list[dict[str, Any]], catalog: dict | None = None) -> bytes:
    series: dict[str, Any] = {"seriesID": series_id, "data": observations}
    if catalog is not None:
        series["catalog"] = catalog
    envelope = {"status": "REQUEST_SUCCEEDED", "responseTime": 50, "message": [], "Results": {"series": [series]}}
    return json.dumps(envelope, separators=(",", ":")).encode()


def observation(year: int, period: str, value: str, footnotes: list[dict] | None = None) -> dict[str, Any]:
    return {"year": str(year), "period": period, "periodName": period, "value": value, "footnotes": footnotes or [{}]}


@dataclass
class TransformerAws:
    s3: Any
    ddb: Any
    sqs: Any
    sns: Any
    glue: Any
    bucket: str
    events_url: str
    landings: Landings = field(init=False)

    def __post_init__(self) -> None:
        self.landings = Landings(self)

    # -- objects ------------------------------------------------------------------------------------------------
    def put(self, key: str, body: bytes, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        return self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=metadata or {})

    def get(self, key: str, version_id: str | None = None) -> bytes:
        kwargs = {"VersionId": version_id} if version_id else {}
        return self.s3.get_object(Bucket=self.bucket, Key=key, **kwargs)["Body"].read()

    def keys(self, prefix: str) -> list[str]:
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return sorted(keys)

    def snapshot(self, prefix: str) -> dict[str, bytes]:
        """Every current object under a prefix with its bytes (to compare runs byte for byte)."""
        return {key: self.get(key) for key in self.keys(prefix)}

    def versions(self, prefix: str) -> list[tuple[str, str, str]]:
        """(key, version id, etag) of every version and delete marker under a prefix: a landing's full history."""
        listed = self.s3.list_object_versions(Bucket=self.bucket, Prefix=prefix)
        found = [(v["Key"], v["VersionId"], v["ETag"]) for v in listed.get("Versions", [])]
        found += [(m["Key"], m["VersionId"], "delete-marker") for m in listed.get("DeleteMarkers", [])]
        return sorted(found)

    def parquet(self, key: str) -> pa.Table:
        return pq.read_table(io.BytesIO(self.get(key)))

    def staging(self, table: str) -> pa.Table:
        """A staging table read as a reader would: every file, Hive partition values as columns."""
        parts = []
        for key in self.keys(f"staging/{table}/"):
            data = self.parquet(key)
            for segment in key.split("/")[2:-1]:
                name, _, value = segment.partition("=")
                data = data.append_column(name, pa.array([value] * data.num_rows, pa.string()))
            parts.append(data)
        return pa.concat_tables(parts) if parts else pa.table({})

    def json(self, key: str) -> Any:
        return json.loads(self.get(key))

    # -- events and state ---------------------------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        """Every pipeline event published since the last call (drains the capture queue)."""
        return [json.loads(m["Body"]) for m in drain_queue(self.sqs, self.events_url)]

    def state_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        from datalake.state import from_item

        item = self.ddb.get_item(TableName=os.environ["STATE_TABLE"], Key={"pk": {"S": pk}, "sk": {"S": sk}})
        return from_item(item["Item"]) if "Item" in item else None


class Landings:
    """Commits landings into the moto bucket exactly per the contract (manifest last, parts with sha256)."""

    def __init__(self, aws: TransformerAws) -> None:
        self.aws = aws

    def _commit(
        self,
        source: Source,
        dataset: str,
        parts: list[ManifestPart],
        content_sha256: str,
        moment: datetime,
        run_id: str,
        changes: list[FileChange] | None = None,
        fetched_at: datetime | None = None,
    ) -> str:
        manifest = Manifest(
            run_id=run_id,
            source=source,
            dataset=dataset,
            created_at=moment,
            fetched_at=fetched_at,
            source_url=f"https://example.invalid/{source.value}/{dataset}",
            content_sha256=content_sha256,
            parts=parts,
            changes=changes or [],
        )
        key = manifest_key(source, dataset, moment, content_sha256)
        self.aws.put(key, manifest.model_dump_json(indent=1).encode(), {"run-id": run_id})
        return key

    def _part(self, key: str, body: bytes, role: str, records: int | None, run_id: str, name: str | None = None):
        written = self.aws.put(
            key, body, {"run-id": run_id, "content-sha256": sha256_hex(body), "record-count": str(records or "")}
        )
        return ManifestPart(
            key=key,
            sha256=sha256_hex(body),
            bytes=len(body),
            records=records,
            version_id=written.get("VersionId"),
            role=role,  # type: ignore[arg-type]
            name=name,
        )

    def single(
        self,
        source: Source,
        dataset: str,
        body: bytes,
        moment: datetime = MOMENT,
        run_id: str = RUN_ID,
        records: int | None = None,
    ) -> str:
        """One raw object (a BLS series document, a DataUSA response), then its manifest."""
        digest = sha256_hex(body)
        part = self._part(landing_key(source, dataset, moment, digest), body, "data", records, run_id)
        return self._commit(source, dataset, [part], digest, moment, run_id)

    def bls_api(
        self,
        series_id: str,
        responses: list[bytes],
        moment: datetime = MOMENT,
        run_id: str = RUN_ID,
    ) -> str:
        """A BLS API series landing as the extractor commits it: each response body (one per year window) stored
        once as received under landing/bls_api/_responses/ (a body already there is reused, as the series of one
        POST share it), then the series' manifest, whose parts select the series."""
        parts = []
        for body in responses:
            digest = sha256_hex(body)
            key = bls_api_response_key(moment, digest)
            if key in self.aws.keys(key):
                version_id = self.aws.s3.head_object(Bucket=self.aws.bucket, Key=key).get("VersionId")
            else:
                version_id = self.aws.put(
                    key, body, {"run-id": run_id, "content-sha256": digest, "record-count": ""}
                ).get("VersionId")
            parts.append(
                ManifestPart(
                    key=key,
                    sha256=digest,
                    bytes=len(body),
                    records=_series_records(body, series_id),
                    version_id=version_id,
                    role="data",
                    select_series=series_id,
                )
            )
        content = sha256_hex("".join([series_id, *(p.sha256 for p in parts)]).encode())
        return self._commit(Source.BLS_API, series_id, parts, content, moment, run_id)

    def socrata(
        self,
        dataset: str,
        pages: list[bytes],
        views: bytes,
        moment: datetime = MOMENT,
        run_id: str = RUN_ID,
    ) -> str:
        """Pages (JSON arrays) as parts part-00000..., the metadata as the last part, then the manifest."""
        digest = sha256_hex(b"".join(sha256_hex(p).encode() for p in [*pages, views]))
        parts = [
            self._part(
                landing_part_key(Source.SOCRATA, dataset, moment, digest, i, ".json"), page, "data", None, run_id
            )
            for i, page in enumerate(pages)
        ]
        parts.append(
            self._part(
                landing_part_key(Source.SOCRATA, dataset, moment, digest, len(pages), ".json"),
                views,
                "metadata",
                None,
                run_id,
            )
        )
        return self._commit(Source.SOCRATA, dataset, parts, digest, moment, run_id)

    def bulk_sync(
        self,
        survey: str,
        files: dict[str, bytes],
        moment: datetime = MOMENT,
        run_id: str = RUN_ID,
        fetched_at: datetime | None = None,
    ) -> str:
        """A mirror sync: the changed files written in place (a new version each), then the manifest."""
        parts, changes = [], []
        for name, body in sorted(files.items()):
            key = bulk_mirror_key(survey, name)
            existed = bool(self.aws.keys(key))
            role = "data" if name.startswith(f"{survey}.data.") else "mapping"
            records = max(0, len([ln for ln in body.splitlines() if ln.strip()]) - 1)
            parts.append(self._part(key, body, role, records, run_id, name=name))
            changes.append(
                FileChange(
                    name=name,
                    action="changed" if existed else "added",
                    key=key,
                    bytes=len(body),
                    sha256=sha256_hex(body),
                )
            )
        digest = sha256_hex("".join(f"{p.name}:{p.sha256}" for p in parts).encode())
        return self._commit(Source.BLS_BULK, survey, parts, digest, moment, run_id, changes, fetched_at)

    def pr_release(
        self,
        folder: Path,
        moment: datetime = MOMENT,
        run_id: str = RUN_ID,
        files: tuple[str, ...] = (),
        fetched_at: datetime | None = None,
    ) -> str:
        names = files or (
            "pr.data.0.Current",
            "pr.series",
            "pr.sector",
            "pr.class",
            "pr.measure",
            "pr.duration",
            "pr.seasonal",
        )
        return self.bulk_sync("pr", {n: (folder / n).read_bytes() for n in names}, moment, run_id, fetched_at)


def _series_records(body: bytes, series_id: str) -> int | None:
    """The observations of one series in a response body (None when the body is not a readable response)."""
    try:
        document = json.loads(body)
        return sum(len(s["data"]) for s in document["Results"]["series"] if s["seriesID"] == series_id)
    except (ValueError, KeyError, TypeError):
        return None


@contextmanager
def transformer_aws() -> Iterator[TransformerAws]:
    """moto, in-process: the versioned lake bucket, the state and idempotency tables, the pipeline topic with a
    queue capturing every event, and the Glue database."""
    with mock_aws():
        s3, ddb, sqs, sns, glue = clients("s3", "dynamodb", "sqs", "sns", "glue")
        bucket = os.environ["LAKE_BUCKET"]
        create_lake_bucket(s3, bucket)
        create_state_table(ddb, os.environ["STATE_TABLE"])
        create_idempotency_table(ddb, os.environ["IDEMPOTENCY_TABLE"])
        _, events_url = capture_topic(
            sns, sqs, os.environ["PIPELINE_TOPIC_ARN"].rsplit(":", 1)[1], "transformer-test-events"
        )
        glue.create_database(DatabaseInput={"Name": os.environ["GLUE_DATABASE"]})
        yield TransformerAws(s3, ddb, sqs, sns, glue, bucket, events_url)


def new_service():
    """A TransformerService wired to the (moto) AWS of the current test, settings read from the test env."""
    from datalake.settings import TransformerSettings, load_settings
    from transformer.service import build_service

    return build_service(load_settings(TransformerSettings))


def stage(aws: TransformerAws, manifest_key: str, **options: Any) -> dict[str, Any]:
    """Stage one landing through the service (no idempotency layer): what a redelivery with a new etag does.

    ``options``: the service's own (e.g. ``bulk_piece_bytes``), beside the ports composed from the settings."""
    from transformer.landing import LandingRef
    from transformer.service import TransformerService

    service = new_service()
    if options:
        service = TransformerService(service.ports, **options)
    etag = aws.s3.head_object(Bucket=aws.bucket, Key=manifest_key)["ETag"].strip('"')
    landing = LandingRef(bucket=aws.bucket, key=manifest_key, etag=etag)
    return service.stage(landing, service.read_manifest(landing)).as_dict()


# -- Lambda events ---------------------------------------------------------------------------------------------------


def s3_record(bucket: str, key: str, etag: str, size: int = 0, version_id: str | None = None) -> dict[str, Any]:
    """One S3 event record as S3 sends it: the key URL-encoded ('=' as %3D)."""
    s3_object: dict[str, Any] = {
        "key": quote_plus(key, safe="/"),
        "size": size,
        "eTag": etag,
        "sequencer": "0A1B2C3D4E5F",
    }
    if version_id:
        s3_object["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-21T08:00:05.000Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AROAEXAMPLE:odp-dev-extractor"},
        "requestParameters": {"sourceIPAddress": "10.0.0.1"},
        "responseElements": {"x-amz-request-id": "EXAMPLE123456789", "x-amz-id-2": "EXAMPLE/abc"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "landing-manifests",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKEXAMPLE"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": s3_object,
        },
    }


def sqs_record(body: dict[str, Any], message_id: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"AQEB{message_id}",
        "body": json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1795248005000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1795248005100",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(json.dumps(body).encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:{ACCOUNT}:odp-dev-transform",
        "awsRegion": "us-east-1",
    }


def s3_test_event_body(bucket: str) -> dict[str, Any]:
    return {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-11-21T07:59:00.000Z",
        "Bucket": bucket,
        "RequestId": "EXAMPLE0000000000",
        "HostId": "EXAMPLE/host",
    }


def manifest_keys_of(event: dict[str, Any]) -> list[str]:
    """The (decoded) manifest keys an SQS event of S3 notifications names."""
    from urllib.parse import unquote_plus

    keys = []
    for record in event["Records"]:
        body = json.loads(record["body"])
        for s3 in body.get("Records", []):
            keys.append(unquote_plus(s3["s3"]["object"]["key"]))
    return keys
