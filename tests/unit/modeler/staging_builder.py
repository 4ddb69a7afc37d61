"""Builds staging Parquet per docs/contracts.md from the raw files, for the modeler's tests.

This is a stand-in for the transformer (written concurrently), kept deliberately plain: read the raw file,
strip the padded cells, cast to the contract's types, add the lineage columns, write one deterministic part
per partition. The tests' *expected answers* never use it: they parse the raw files again with csv/json.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from datalake.contracts import DatasetStaged, StagedTable

ROOT = Path(__file__).resolve().parents[3]
PR_DIR = ROOT / "data" / "replay" / "bls_bulk" / "pr"
PR_CURRENT = PR_DIR / "pr.data.0.Current"
FIXTURES = ROOT / "tests" / "fixtures" / "modeler"
POPULATION_JSON = FIXTURES / "tesseract_jsonrecords_acs_yg_total_population_1_Nation_Year.json"
POPULATION_LEGACY_JSON = FIXTURES / "api_data_drilldowns-Nation_measures-Population__2013-2023.json"
SIAD_CSV = FIXTURES / "9uvn-hv6j_oficines_informacio_atencio_dones_SIAD.csv"
CATALUNYA = ROOT / "tests" / "fixtures" / "catalunya"
REPLAY_SOCRATA = ROOT / "data" / "replay" / "socrata"
CATALUNYA_CSV = {
    "ivft-vegh": CATALUNYA / "ivft-vegh_registre_entitats_serveis_establiments_socials_20240515_rows.csv",
    "b4rr-d25b": CATALUNYA / "poblacio_municipi_rang_edat_sexe_b4rr-d25b_2019-2020_PEEVE.csv",
    "9aju-tpwc": CATALUNYA / "municipis_catalunya_geo_9aju-tpwc_2023_raulvillalba.csv",
    "8idm-becu": CATALUNYA / "8idm-becu_excerpt_garraf_aran_and_three_municipalities.csv",
    "utrz-jf79": CATALUNYA / "utrz-jf79_serveis_atencio_integral_LGBTI.csv",
    "amca-cgrp": CATALUNYA / "amca-cgrp_entitats_de_dones.csv",
}

RUN_ID = "20260807T083000Z-5e1f0a2b"
INGESTED_AT = datetime(2026, 8, 7, 8, 31, tzinfo=UTC)
LINEAGE_FIELDS = [
    ("_source", pa.string()),
    ("_ingested_at", pa.timestamp("us", "UTC")),
    ("_run_id", pa.string()),
]
OBSERVATION_SCHEMA = pa.schema(
    [
        ("series_id", pa.string()),
        ("year", pa.int32()),
        ("period", pa.string()),
        ("value", pa.float64()),
        ("footnote_codes", pa.string()),
        ("source_file", pa.string()),
        *LINEAGE_FIELDS,
    ]
)
POPULATION_SCHEMA = pa.schema(
    [
        ("year", pa.int32()),
        ("geography_id", pa.string()),
        ("geography", pa.string()),
        ("population", pa.int64()),
        ("vintage", pa.string()),
        ("source_shape", pa.string()),
        *LINEAGE_FIELDS,
    ]
)


def _lineage(n: int, source: str, run_id: str, ingested_at: datetime) -> dict[str, pa.Array]:
    return {
        "_source": pa.array([source] * n, pa.string()),
        "_ingested_at": pa.array([ingested_at] * n, pa.timestamp("us", "UTC")),
        "_run_id": pa.array([run_id] * n, pa.string()),
    }


def bulk_mirror_source(file_name: str, version_id: str, survey: str = "pr") -> str:
    return f"landing/bls_bulk/{survey}/{file_name}?versionId={version_id}"


def read_bulk_tsv(path: Path) -> pa.Table:
    """A BLS bulk data file as strings, padded cells stripped (CRLF, padded ids and values, trailing TAB)."""
    with path.open(encoding="utf-8", newline="") as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
    table = pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string())),
    )
    names = [n.strip() for n in table.column_names]
    table = table.rename_columns(names)
    return pa.table({n: pc.utf8_trim_whitespace(pc.cast(table[n], pa.string())) for n in names})


def bulk_observations(
    path: Path, run_id: str = RUN_ID, version_id: str = "v-current-1", ingested_at: datetime = INGESTED_AT
) -> pa.Table:
    raw = read_bulk_tsv(path)
    value = raw["value"]
    value = pc.if_else(pc.equal(value, "-"), pa.scalar(None, pa.string()), value)
    footnote = pc.if_else(pc.equal(raw["footnote_codes"], ""), pa.scalar(None, pa.string()), raw["footnote_codes"])
    n = raw.num_rows
    return pa.table(
        {
            "series_id": raw["series_id"],
            "year": pc.cast(raw["year"], pa.int32()),
            "period": raw["period"],
            "value": pc.cast(value, pa.float64()),
            "footnote_codes": footnote,
            "source_file": pa.array([path.name] * n, pa.string()),
            **_lineage(n, bulk_mirror_source(path.name, version_id), run_id, ingested_at),
        },
        schema=OBSERVATION_SCHEMA,
    )


def population_landing_key(path: Path, moment: datetime = INGESTED_AT) -> str:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"landing/datausa/population/ingest_date={moment:%Y-%m-%d}/{moment:%Y%m%dT%H%M%SZ}-{sha[:12]}.json"


def population_rows(
    path: Path = POPULATION_JSON, run_id: str = RUN_ID, ingested_at: datetime = INGESTED_AT
) -> pa.Table:
    """The tesseract (jsonrecords) or legacy DataUSA shape, as the population staging table."""
    doc = json.loads(path.read_text())
    rows = []
    if "columns" in doc:  # tesseract
        vintage, shape = doc["annotations"]["dataset_name"], "tesseract"
        for r in doc["data"]:
            rows.append((int(r["Year"]), r["Nation ID"], r["Nation"], int(r["Population"])))
    else:
        vintage, shape = doc["source"][0]["annotations"]["dataset_name"], "legacy"
        for r in doc["data"]:
            rows.append((int(r["ID Year"]), r["ID Nation"], r["Nation"], int(r["Population"])))
    n = len(rows)
    return pa.table(
        {
            "year": pa.array([r[0] for r in rows], pa.int32()),
            "geography_id": [r[1] for r in rows],
            "geography": [r[2] for r in rows],
            "population": pa.array([r[3] for r in rows], pa.int64()),
            "vintage": [vintage] * n,
            "source_shape": [shape] * n,
            **_lineage(n, population_landing_key(path, ingested_at), run_id, ingested_at),
        },
        schema=POPULATION_SCHEMA,
    )


def _mapping(path: Path) -> dict[str, str]:
    table = read_bulk_tsv(path)
    return dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))


def series_rows(pr_dir: Path = PR_DIR, run_id: str = RUN_ID, ingested_at: datetime = INGESTED_AT) -> pa.Table:
    raw = read_bulk_tsv(pr_dir / "pr.series")
    decoded = {
        "sector": _mapping(pr_dir / "pr.sector"),
        "class": _mapping(pr_dir / "pr.class"),
        "measure": _mapping(pr_dir / "pr.measure"),
        "duration": _mapping(pr_dir / "pr.duration"),
    }
    n = raw.num_rows
    columns: dict[str, Any] = {
        "series_id": raw["series_id"],
        "series_title": pa.nulls(n, pa.string()),
        "seasonal": raw["seasonal"],
        "base_year": raw["base_year"],
        "begin_year": pc.cast(raw["begin_year"], pa.int32()),
        "begin_period": raw["begin_period"],
        "end_year": pc.cast(raw["end_year"], pa.int32()),
        "end_period": raw["end_period"],
    }
    for kind, label in (("sector", "name"), ("class", "text"), ("measure", "text"), ("duration", "text")):
        codes = raw[f"{kind}_code"].to_pylist()
        columns[f"{kind}_code"] = pa.array(codes, pa.string())
        columns[f"{kind}_{label}"] = pa.array([decoded[kind].get(c) for c in codes], pa.string())
    columns["attributes_json"] = pa.nulls(n, pa.string())
    columns.update(_lineage(n, bulk_mirror_source("pr.series", "v-series-1"), run_id, ingested_at))
    return pa.table(columns)


def territory_key(text: str | None) -> str | None:
    """The contract's normalised join key: lower case, accents and punctuation stripped, spaces collapsed."""
    if text is None or not text.strip():
        return None
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", plain)).strip()


def socrata_rows(
    csv_path: Path = SIAD_CSV,
    dataset: str = "9uvn-hv6j",
    run_id: str = RUN_ID,
    ingested_at: datetime = INGESTED_AT,
) -> pa.Table:
    with csv_path.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    n = len(records)
    columns: dict[str, Any] = {
        name.lstrip(":@"): pa.array([r[name] or None for r in records], pa.string())
        for name in records[0]
        if name not in ("latitud", "longitud")
    }
    columns["latitud"] = pa.array([float(r["latitud"]) if r["latitud"] else None for r in records], pa.float64())
    columns["longitud"] = pa.array([float(r["longitud"]) if r["longitud"] else None for r in records], pa.float64())
    columns["territory_comarca"] = pa.array([territory_key(r["comarca"]) for r in records], pa.string())
    columns["territory_municipality"] = pa.array([territory_key(r["poblaci"]) for r in records], pa.string())
    sha = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    landing = f"landing/socrata/{dataset}/ingest_date={ingested_at:%Y-%m-%d}/{ingested_at:%Y%m%dT%H%M%SZ}-{sha[:12]}"
    source = f"{landing}/part-00000.json"
    columns.update(_lineage(n, source, run_id, ingested_at))
    return pa.table(columns)


_WKT_POINT = re.compile(r"^POINT \((-?[0-9.]+) (-?[0-9.]+)\)$")


def socrata_staging(
    dataset: str,
    csv_path: Path | None = None,
    run_id: str = RUN_ID,
    ingested_at: datetime = INGESTED_AT,
) -> pa.Table:
    """A Catalunya CSV export as the transformer stages it: columns named and typed by the replay's metadata
    (``data/replay/socrata/{id}.views.json``, matched to the CSV's columns by position), empty cells null, numbers
    as float64, dates as timestamps, points as ``{column}_lat``/``{column}_lon``, plus the lineage columns."""
    csv_path = csv_path or CATALUNYA_CSV[dataset]
    views = json.loads((REPLAY_SOCRATA / f"{dataset}.views.json").read_text(encoding="utf-8"))
    columns_meta = sorted(views["columns"], key=lambda c: c["position"])
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        records = list(reader)
    columns: dict[str, Any] = {}
    for index, meta in enumerate(columns_meta):
        name, kind = meta["fieldName"].lstrip(":@"), meta["dataTypeName"]
        cells = [r[index] or None for r in records]
        if kind == "number":
            columns[name] = pa.array([None if c is None else float(c) for c in cells], pa.float64())
        elif kind == "calendar_date":
            parsed = [None if c is None else datetime.fromisoformat(c) for c in cells]
            columns[name] = pa.array(parsed, pa.timestamp("us"))
        elif kind == "point":
            points = [None if c is None else _WKT_POINT.match(c) for c in cells]
            columns[f"{name}_lat"] = pa.array([None if m is None else float(m.group(2)) for m in points], pa.float64())
            columns[f"{name}_lon"] = pa.array([None if m is None else float(m.group(1)) for m in points], pa.float64())
        else:
            columns[name] = pa.array(cells, pa.string())
    sha = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    landing = f"landing/socrata/{dataset}/ingest_date={ingested_at:%Y-%m-%d}/{ingested_at:%Y%m%dT%H%M%SZ}-{sha[:12]}"
    columns.update(_lineage(len(records), f"{landing}/part-00000.json", run_id, ingested_at))
    return pa.table(columns)


def socrata_table_name(dataset: str) -> str:
    return "socrata_" + dataset.replace("-", "_")


# Staged by stage_all: every source that resolves fully onto the municipalities. The women's
# organisations (amca-cgrp), 21 of whose 1,000 rows name a locality and are quarantined, are staged by their tests.
CATALUNYA_DEFAULT = ("9aju-tpwc", "ivft-vegh", "b4rr-d25b", "8idm-becu", "utrz-jf79")


# ----------------------------------------------------------------------------------------------------------------
# Writing staging objects
# ----------------------------------------------------------------------------------------------------------------


def parquet_body(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def staging_key(table_name: str, partition: dict[str, str], body: bytes) -> str:
    parts = "".join(f"{k}={v}/" for k, v in partition.items())
    return f"staging/{table_name}/{parts}part-{hashlib.sha256(body).hexdigest()[:16]}.parquet"


@dataclass
class StagingLake:
    """Writes staging tables into a bucket (moto) through a boto3 S3 client."""

    s3: Any
    bucket: str

    def write(self, table_name: str, table: pa.Table, partition: dict[str, str] | None = None) -> str:
        body = parquet_body(table)
        key = staging_key(table_name, partition or {}, body)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return key

    def replace(self, table_name: str, table: pa.Table, partition: dict[str, str] | None = None) -> str:
        """Write a new part and delete the partition's other parts (a transformer's merge, simplified)."""
        prefix = f"staging/{table_name}/" + "".join(f"{k}={v}/" for k, v in (partition or {}).items())
        old = [o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])]
        key = self.write(table_name, table, partition)
        for k in old:
            if k != key:
                self.s3.delete_object(Bucket=self.bucket, Key=k)
        return key

    def stage_everything(self, run_id: str = RUN_ID) -> dict[str, str]:
        """The 2026-08 pr release (Current file and series), the DataUSA population and the SIAD register."""
        return {
            "bls_observation": self.replace(
                "bls_observation", bulk_observations(PR_CURRENT, run_id), {"source_kind": "bulk", "survey": "pr"}
            ),
            "bls_series": self.replace("bls_series", series_rows(run_id=run_id), {"survey": "pr"}),
            "population": self.replace("population", population_rows(run_id=run_id)),
            "socrata_9uvn_hv6j": self.replace("socrata_9uvn_hv6j", socrata_rows(run_id=run_id)),
        }

    def stage_all(self, run_id: str = RUN_ID) -> dict[str, str]:
        """``stage_everything`` and the Catalunya sources of ``CATALUNYA_DEFAULT``: every mart has its inputs."""
        return {**self.stage_everything(run_id), **self.stage_catalunya(CATALUNYA_DEFAULT, run_id)}

    def stage_catalunya(self, datasets: tuple[str, ...], run_id: str = RUN_ID, **kwargs: Any) -> dict[str, str]:
        """Stage Catalunya datasets from their CSV fixtures (``socrata_staging``), each replacing its table."""
        return {
            socrata_table_name(d): self.replace(socrata_table_name(d), socrata_staging(d, run_id=run_id, **kwargs))
            for d in datasets
        }


def staged_event(
    source: str, dataset: str, tables: dict[str, int], run_id: str = RUN_ID, manifest_key: str | None = None
) -> DatasetStaged:
    return DatasetStaged(
        run_id=run_id,
        source=source,
        dataset=dataset,
        manifest_key=manifest_key
        or f"landing/{source}/{dataset}/ingest_date=2026-08-07/20260807T083000Z.manifest.json",
        tables=[StagedTable(table=t, rows_in=n, rows_written=n) for t, n in tables.items()],
    )


def sqs_event_of(events: list[DatasetStaged], topic_arn: str = "arn:aws:sns:us-east-1:123456789012:test-pipeline"):
    """An SQS batch of SNS notifications (raw delivery off), the shape Lambda hands the modeler."""
    records = []
    for i, event in enumerate(events):
        notification = {
            "Type": "Notification",
            "MessageId": f"00000000-0000-4000-8000-{i:012d}",
            "TopicArn": topic_arn,
            "Message": event.model_dump_json(),
            "Timestamp": "2026-08-07T08:32:00.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {
                "event_type": {"Type": "String", "Value": event.event_type.value},
                "run_id": {"Type": "String", "Value": event.run_id},
            },
        }
        records.append(
            {
                "messageId": f"10000000-0000-4000-8000-{i:012d}",
                "receiptHandle": f"handle-{i}",
                "body": json.dumps(notification),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1786091520000",
                    "SenderId": "AIDAISMY7JYY5F7RTT6AO",
                    "ApproximateFirstReceiveTimestamp": "1786091520001",
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(json.dumps(notification).encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:odp-dev-model",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}
