"""The data lake's key layout: the only place that knows how keys are spelled.

landing/{source}/{dataset}/ingest_date=YYYY-MM-DD/{run_ts}-{sha256[:12]}.json        a single-object landing
landing/{source}/{dataset}/ingest_date=YYYY-MM-DD/{run_ts}-{sha256[:12]}/part-00000.json   parts of a paged landing
landing/{source}/{dataset}/ingest_date=YYYY-MM-DD/{run_ts}-{sha256[:12]}.manifest.json   commits the landing
landing/{source}/{dataset}/ingest_date=YYYY-MM-DD/{run_ts}-{sha256[:12]}.held.json   a snapshot landed raw but held
                                                     (not proven whole, or an implausible drop): never staged
landing/bls_api/_responses/ingest_date=YYYY-MM-DD/{run_ts}-{sha256(body)[:12]}.json   one BLS API response body,
                                                     stored once as received; the series' manifests point at it
landing/bls_bulk/{survey}/{file}                                                       the in-place bulk mirror
staging/{table}/{partition}=.../part-*.parquet
staging/{table}_retired/{partition}=.../part-*.parquet   rows a newer full snapshot no longer holds (history)
marts/{dimensions|facts|aggregates|reports}/{name}/...
quarantine/{source}/{dataset}/...
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import unquote_plus

from datalake.contracts import Source, validate_dataset_id

LANDING = "landing"
STAGING = "staging"
MARTS = "marts"
QUARANTINE = "quarantine"
MANIFEST_SUFFIX = ".manifest.json"
HELD_SUFFIX = ".held.json"
MART_KINDS = ("dimensions", "facts", "aggregates", "reports")
# Not a dataset: "_" cannot start a BLS series id, so this prefix never collides with a series' landings.
BLS_API_RESPONSES = f"{LANDING}/{Source.BLS_API.value}/_responses/"

_BULK_FILE = re.compile(r"^[a-z]{2}\.[A-Za-z0-9_.\-]{1,120}$")
_TABLE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PARTITION_VALUE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def run_timestamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def landing_prefix(source: Source, dataset: str, moment: datetime) -> str:
    validate_dataset_id(source, dataset)
    return f"{LANDING}/{source.value}/{dataset}/ingest_date={moment:%Y-%m-%d}/"


def landing_key(source: Source, dataset: str, moment: datetime, sha256: str, suffix: str = ".json") -> str:
    """Key of a single-object landing: the raw payload exactly as received."""
    return f"{landing_prefix(source, dataset, moment)}{run_timestamp(moment)}-{sha256[:12]}{suffix}"


def landing_part_key(source: Source, dataset: str, moment: datetime, sha256: str, index: int, suffix: str) -> str:
    """Key of one part of a multi-object landing (a Socrata page, a metadata document)."""
    return f"{landing_prefix(source, dataset, moment)}{run_timestamp(moment)}-{sha256[:12]}/part-{index:05d}{suffix}"


def manifest_key(source: Source, dataset: str, moment: datetime, sha256: str) -> str:
    return f"{landing_prefix(source, dataset, moment)}{run_timestamp(moment)}-{sha256[:12]}{MANIFEST_SUFFIX}"


def held_key(source: Source, dataset: str, moment: datetime, sha256: str) -> str:
    """Key of a held snapshot's record (``HeldLanding``): beside its raw parts, never matched by the S3
    notification (``*.manifest.json``), so nothing stages it."""
    return f"{landing_prefix(source, dataset, moment)}{run_timestamp(moment)}-{sha256[:12]}{HELD_SUFFIX}"


def bls_api_response_key(moment: datetime, sha256: str) -> str:
    """Key of one BLS API response body, stored exactly as received, once.

    A coalesced POST answers up to 50 series; each series' landing is its own manifest, whose parts point at the
    response(s) it came from and name the series to select. The object is not a landing of its own: no manifest,
    so no S3 notification (the notification matches ``*.manifest.json`` only).
    """
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"{sha256!r} is not a sha256 hex digest")
    return f"{BLS_API_RESPONSES}ingest_date={moment:%Y-%m-%d}/{run_timestamp(moment)}-{sha256[:12]}.json"


def is_bls_api_response_key(key: str) -> bool:
    return key.startswith(BLS_API_RESPONSES) and ".." not in key.split("/")


def is_manifest_key(key: str) -> bool:
    return key.startswith(f"{LANDING}/") and key.endswith(MANIFEST_SUFFIX)


def bulk_mirror_prefix(survey: str) -> str:
    validate_dataset_id(Source.BLS_BULK, survey)
    return f"{LANDING}/{Source.BLS_BULK.value}/{survey}/"


def bulk_mirror_key(survey: str, file_name: str) -> str:
    """Key of a mirrored BLS bulk file. File names come from a remote listing, so they are checked."""
    if not _BULK_FILE.fullmatch(file_name) or ".." in file_name or not file_name.startswith(f"{survey}."):
        raise ValueError(f"bulk file name {file_name!r} is not a {survey} file")
    return f"{bulk_mirror_prefix(survey)}{file_name}"


def staging_table_prefix(table: str) -> str:
    if not _TABLE.fullmatch(table):
        raise ValueError(f"table name {table!r} is not snake_case")
    return f"{STAGING}/{table}/"


def staging_partition_prefix(table: str, partition: dict[str, str | int]) -> str:
    """Hive-style partition prefix, e.g. staging/bls_observation/source_kind=bulk/year=2024/."""
    parts = []
    for column, value in partition.items():
        text = str(value)
        if not _TABLE.fullmatch(column) or not _PARTITION_VALUE.fullmatch(text) or ".." in text:
            raise ValueError(f"partition {column}={text!r} is not key-safe")
        parts.append(f"{column}={text}")
    return staging_table_prefix(table) + "".join(f"{p}/" for p in parts)


def retired_prefix(table: str, partition: dict[str, str | int]) -> str:
    """Where rows that left a staging table are kept (history): ``staging/{table}_retired/{partitions}/``."""
    current = staging_partition_prefix(table, partition) if partition else staging_table_prefix(table)
    return f"{STAGING}/{table}_retired/" + current[len(staging_table_prefix(table)) :]


def mart_prefix(kind: str, name: str) -> str:
    if kind not in MART_KINDS:
        raise ValueError(f"mart kind {kind!r} is not one of {MART_KINDS}")
    if not _TABLE.fullmatch(name):
        raise ValueError(f"mart name {name!r} is not snake_case")
    return f"{MARTS}/{kind}/{name}/"


def quarantine_prefix(source: Source, dataset: str) -> str:
    validate_dataset_id(source, dataset)
    return f"{QUARANTINE}/{source.value}/{dataset}/"


def decode_event_key(raw_key: str) -> str:
    """S3 event notifications URL-encode keys ('=' becomes %3D, spaces become '+')."""
    return unquote_plus(raw_key)


def parse_landing_key(key: str) -> tuple[Source, str]:
    """Source and dataset of a landing key, validated.

    Raises
    ------
    ValueError
        When the key is not under landing/{source}/{dataset}/.
    """
    pieces = key.split("/")
    if len(pieces) < 4 or pieces[0] != LANDING or ".." in pieces:
        raise ValueError(f"{key!r} is not a landing key")
    try:
        source = Source(pieces[1])
    except ValueError as exc:
        raise ValueError(f"{key!r} names an unknown source {pieces[1]!r}") from exc
    return source, validate_dataset_id(source, pieces[2])
