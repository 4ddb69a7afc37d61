"""Landing adapter: change detection against the state table, raw objects, the manifest (last), state, events.

Order of a landing, so the transformer never sees half of one and a retry converges:
  1. compare the content hash with the dataset's last landing (state table) -> unchanged: write nothing;
  2. write every part (raw bytes as received; metadata run-id, source-url, content-sha256, record-count). A part
     shared by several landings (a coalesced BLS API response) is written once, by the first landing that needs
     it, and the others point at the same object and version;
  3. write the manifest, which commits the landing (the S3 notification on ``*.manifest.json`` starts the
     transform);
  4. record the new hash in the state table, then publish ``dataset.extracted``.
A failure before 4 leaves the old hash in place, so the retry lands again, at the same deterministic keys.

Before 2, three guards:
  - a fetch that could not be proven whole (on its last receive) is landed raw and *held*: its parts and a
    ``.held.json`` record are written, the state keeps the previous landing, and ``dataset.held`` tells people;
  - a fetch older than the landing the state holds (``fetched_at``: overlapping runs) replaces nothing; step 4 is a
    compare-and-set on that time, so the newer fetch wins whichever commits last;
  - a fetch that drops more than upstream ever does (``extractor.proof``) is held too, unless the operator accepted
    the drop (``accept_drop``) or the same content was held in ``PERSISTENT_DROP_RUNS`` consecutive runs.
An unchanged source is landed again when the staging files its last landing produced are gone (self-healing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from datalake.contracts import (
    DatasetExtracted,
    DatasetHeld,
    DatasetUnchanged,
    ExtractRequest,
    HeldLanding,
    Manifest,
    ManifestPart,
    PipelineEvent,
)
from datalake.lake import LakeError, LakeStore, ObjectMissing, PutResult
from datalake.layout import held_key, landing_key, landing_part_key, manifest_key
from datalake.state import ConditionFailed, StateStore, dataset_pk, utc_stamp
from extractor.domain import sha256_hex
from extractor.proof import IncompleteSnapshot, drop_accepted, missing_values, now_utc, row_drop
from extractor.telemetry import telemetry

if TYPE_CHECKING:
    from extractor.http import Download

logger = Logger(child=True)

STATE_SK = "STATE"
Role = Literal["data", "metadata", "mapping"]


@dataclass
class SharedObject:
    """A raw body several landings point at, with a key of its own: a coalesced BLS API response (up to 50 series).

    Written at most once per invocation, by the first landing that needs it (``written`` remembers the version),
    so a batch whose series are all unchanged writes nothing at all.
    """

    key: str
    body: bytes
    sha256: str
    records: int  # every record of the object (a response: the observations of all its series)
    source_url: str
    content_type: str = "application/json"
    written: PutResult | None = None

    @property
    def size(self) -> int:
        return len(self.body)


@dataclass
class FetchedPart:
    """One object to land: a spooled download, bytes built by the connector, or a shared object (see above)."""

    role: Role
    sha256: str
    size: int
    records: int | None
    source_url: str
    body: bytes | None = None
    download: Download | None = None
    suffix: str = ".json"
    content_type: str = "application/json"
    name: str | None = None  # the upstream file name (a bulk file)
    shared: SharedObject | None = None
    select_series: str | None = None  # the series this landing takes from a shared BLS API response
    written: PutResult | None = None  # already in the bucket at its final key (a page landed while paging)

    @classmethod
    def of_bytes(cls, body: bytes, role: Role, records: int | None, source_url: str) -> FetchedPart:
        return cls(
            role=role, sha256=sha256_hex(body), size=len(body), records=records, source_url=source_url, body=body
        )

    @classmethod
    def of_shared(cls, shared: SharedObject, role: Role, records: int | None, select_series: str) -> FetchedPart:
        """This landing's share of a shared object: ``records`` counts the selected series' records only."""
        return cls(
            role=role,
            sha256=shared.sha256,
            size=shared.size,
            records=records,
            source_url=shared.source_url,
            content_type=shared.content_type,
            shared=shared,
            select_series=select_series,
        )

    @classmethod
    def of_download(cls, download: Download, role: Role, records: int | None, source_url: str) -> FetchedPart:
        return cls(
            role=role,
            sha256=download.sha256,
            size=download.size,
            records=records,
            source_url=source_url,
            download=download,
        )

    def stream(self) -> IO[bytes] | bytes:
        if self.download is not None:
            return self.download.rewind()
        return self.body or b""

    def close(self) -> None:
        if self.download is not None:
            self.download.close()
            self.download = None


@dataclass
class Fetched:
    """What a connector fetched for one request, waiting for change detection."""

    request: ExtractRequest
    source_url: str
    content_sha256: str
    parts: list[FetchedPart]
    warnings: list[str] = field(default_factory=list)
    paged: bool = False  # True: parts under {run_ts}-{sha12}/part-NNNNN; False: one object {run_ts}-{sha12}.json
    # Names the paged parts' folder instead of the content hash (a Socrata extraction lands pages before the hash
    # of the whole is known: ``extractor.paging.paging_token``).
    part_token: str | None = None
    fetched_at: datetime = field(default_factory=now_utc)  # when the fetch started: the order of landings
    proof: dict[str, int | str | bool] = field(default_factory=dict)  # the source's evidence it is whole
    # What the plausibility guard compares with the next snapshot, remembered in the state: ``rows``, ``years``.
    measures: dict[str, Any] = field(default_factory=dict)
    # The evidence disproved wholeness on the request's last receive: land raw and hold instead of failing again.
    incomplete: IncompleteSnapshot | None = None
    restored: list[str] = field(default_factory=list)  # what this landing restores (self-healing), in words

    @property
    def records(self) -> int:
        return sum(p.records or 0 for p in self.parts if p.role == "data")

    @property
    def written_keys(self) -> list[str]:
        return [p.written.key for p in self.parts if p.written is not None]

    def close(self) -> None:
        for part in self.parts:
            part.close()


def object_metadata(run_id: str, source_url: str, sha256: str, records: int | None) -> dict[str, str]:
    return {
        "run-id": run_id,
        "source-url": source_url,
        "content-sha256": sha256,
        "record-count": "" if records is None else str(records),
    }


def put_object(
    lake: LakeStore, key: str, body: IO[bytes] | bytes, metadata: dict[str, str], content_type: str
) -> PutResult:
    """PutObject from bytes or a (spooled) file, keeping the version id that pins what was written.

    Raises
    ------
    LakeError
        When S3 refuses or cannot be reached.
    """
    try:
        response = lake.s3.put_object(
            Bucket=lake.bucket, Key=key, Body=body, Metadata=metadata, ContentType=content_type
        )
    except (ClientError, BotoCoreError) as exc:
        raise LakeError(f"cannot write s3://{lake.bucket}/{key}: {exc}") from exc
    return PutResult(key=key, etag=response.get("ETag", "").strip('"'), version_id=response.get("VersionId"))


class Lander:
    def __init__(self, lake: LakeStore, state: StateStore, publish: Callable[[PipelineEvent], Any]) -> None:
        self.lake = lake
        self.state = state
        self.publish = publish

    # -- change detection -------------------------------------------------------------------------------------
    def last_landing(self, request: ExtractRequest) -> dict[str, Any] | None:
        return self.state.get(dataset_pk(request.source.value, request.dataset), STATE_SK)

    def unchanged(self, request: ExtractRequest, content_sha256: str, counts: dict[str, int]) -> dict[str, Any]:
        """Record that the source was checked and nothing changed; tell the pipeline (nothing downstream runs)."""
        now = datetime.now(UTC)
        self.state.update(
            dataset_pk(request.source.value, request.dataset),
            STATE_SK,
            set_values={"last_checked_at": now.isoformat(), "last_run_id": request.run_id},
        )
        self.publish(
            DatasetUnchanged(
                run_id=request.run_id,
                source=request.source,
                dataset=request.dataset,
                content_sha256=content_sha256,
                counts=counts,
            )
        )
        telemetry.count("DatasetsUnchanged", source=request.source.value)
        logger.info("dataset unchanged", extra={"content_sha256": content_sha256, **counts})
        return {
            "outcome": "unchanged",
            "source": request.source.value,
            "dataset": request.dataset,
            "content_sha256": content_sha256,
        }

    # -- landing ----------------------------------------------------------------------------------------------
    def land(self, fetched: Fetched) -> dict[str, Any]:
        """Land a fetch unless its content equals the last landing (see the module docstring for the guards).

        Returns
        -------
        The outcome: ``{"outcome": "extracted" | "unchanged" | "held" | "superseded", ...}``.

        Raises
        ------
        LakeError, StateError, PublishError
            When a write fails; nothing is recorded as landed, so the retry lands again.
        """
        request = fetched.request
        previous = self.last_landing(request) or {}
        if fetched.incomplete is not None:
            return self.hold(fetched, str(fetched.incomplete), fetched.incomplete.check, False, previous)
        if previous.get("content_sha256") == fetched.content_sha256:
            missing = self.missing_staging(previous)
            if not missing:
                self.discard_written(fetched, previous)
                return self.unchanged(request, fetched.content_sha256, {"records": fetched.records})
            fetched.restored.extend(f"staging file {key} was missing: landed again to stage it" for key in missing)
            logger.warning("staging files missing; landing again", extra={"missing": missing[:20]})
        newer = previous.get("fetched_at")
        if newer and newer > utc_stamp(fetched.fetched_at):
            self.discard_written(fetched, previous)
            return self.superseded(request, newer)
        drop = self.implausible(request, previous, fetched)
        if drop is not None:
            accepted = drop_accepted(request.params.accept_drop, request.run_id, previous, fetched.content_sha256)
            if accepted is None:
                return self.hold(fetched, drop, "plausibility", True, previous)
            fetched.warnings.append(f"{drop}; accepted: {accepted}")
        parts, bytes_written = self.write_parts(fetched)
        manifest = Manifest(
            run_id=request.run_id,
            source=request.source,
            dataset=request.dataset,
            trigger=request.trigger,
            created_at=datetime.now(UTC),
            source_url=fetched.source_url,
            content_sha256=fetched.content_sha256,
            parts=parts,
            warnings=fetched.warnings,
            params=request.params,
            fetched_at=fetched.fetched_at,
            proof=fetched.proof,
        )
        key = manifest_key(request.source, request.dataset, request.requested_at, fetched.content_sha256)
        self.commit(manifest, key)
        telemetry.count("BytesLanded", bytes_written, MetricUnit.Bytes, source=request.source.value)
        telemetry.count("RecordsLanded", fetched.records, source=request.source.value)
        counts = {"records": fetched.records, "parts": len(parts)}
        return self.record_landing(manifest, key, counts, fetched.measures, fetched.restored)

    def write_parts(self, fetched: Fetched) -> tuple[list[ManifestPart], int]:
        """Write every part of a fetch (a shared part once, a part landed while paging not again); returns them as
        manifest parts, and the bytes written."""
        request = fetched.request
        parts: list[ManifestPart] = []
        bytes_written = 0
        for index, part in enumerate(fetched.parts):
            if part.shared is not None:
                written, size = self.put_shared(part.shared, request.run_id)
                bytes_written += size
                parts.append(
                    ManifestPart(
                        key=written.key,
                        sha256=part.sha256,
                        bytes=part.size,
                        records=part.records,
                        version_id=written.version_id,
                        role=part.role,
                        select_series=part.select_series,
                    )
                )
                continue
            if part.written is None:
                if fetched.paged:
                    self.write_part(request, fetched.part_token or fetched.content_sha256, index, part)
                else:
                    key = landing_key(
                        request.source, request.dataset, request.requested_at, fetched.content_sha256, part.suffix
                    )
                    part.written = self._put(request, key, part)
                bytes_written += part.size
            parts.append(
                ManifestPart(
                    key=part.written.key,
                    sha256=part.sha256,
                    bytes=part.size,
                    records=part.records,
                    version_id=part.written.version_id,
                    role=part.role,
                    name=part.name,
                )
            )
        return parts, bytes_written

    def write_part(self, request: ExtractRequest, folder: str, index: int, part: FetchedPart) -> PutResult:
        """Write part ``index`` of a paged landing at ``{run_ts}-{folder[:12]}/part-NNNNN``; the part then holds what
        was written (and its spool is freed).

        Raises
        ------
        LakeError
            When S3 refuses.
        """
        key = landing_part_key(request.source, request.dataset, request.requested_at, folder, index, part.suffix)
        part.written = self._put(request, key, part)
        part.close()
        return part.written

    def _put(self, request: ExtractRequest, key: str, part: FetchedPart) -> PutResult:
        return put_object(
            self.lake,
            key,
            part.stream(),
            object_metadata(request.run_id, part.source_url, part.sha256, part.records),
            part.content_type,
        )

    def discard_written(self, fetched: Fetched, previous: dict[str, Any]) -> None:
        """A fetch that replaces nothing (unchanged, superseded): delete the parts it landed while paging, unless the
        landing the state holds is this very fetch's (a retry after its commit) and names them."""
        keys = fetched.written_keys
        if not keys:
            return
        kept: set[str] = set()
        if previous.get("manifest_key"):
            try:
                committed = Manifest.model_validate_json(self.lake.get_bytes(previous["manifest_key"]))
                kept = {p.key for p in committed.parts}
            except ObjectMissing:
                kept = set()
        for key in keys:
            if key not in kept:
                self.lake.delete(key)
        logger.info("parts landed while paging discarded", extra={"parts": len([k for k in keys if k not in kept])})

    # -- guards -----------------------------------------------------------------------------------------------
    def missing_staging(self, previous: dict[str, Any]) -> list[str]:
        """The staging files the last staging of this dataset produced that the bucket no longer holds."""
        return [key for key in (previous.get("staged_groups") or {}).values() if self.lake.head(key) is None]

    @staticmethod
    def implausible(request: ExtractRequest, previous: dict[str, Any], fetched: Fetched) -> str | None:
        """Why the new snapshot drops more than upstream does, compared with the previous one (or None)."""
        before = previous.get("measures") or {}
        what = f"{request.source.value}/{request.dataset}"
        if "years" in fetched.measures:  # the most specific reason first: which years went
            previous_years = before.get("years") or []
            window = fetched.measures.get("window")
            if window:  # a moving window (the BLS API's recent years): compare the years both windows cover
                previous_years = [y for y in previous_years if window[0] <= y <= window[1]]
            lost = missing_values(what, "years", previous_years, fetched.measures["years"])
            if lost:
                return lost
        if "rows" in fetched.measures:
            return row_drop(what, before.get("rows"), fetched.measures["rows"])
        return None

    # -- outcomes that replace nothing ------------------------------------------------------------------------
    def hold(
        self, fetched: Fetched, reason: str, check: str, acceptable: bool, previous: dict[str, Any]
    ) -> dict[str, Any]:
        """Land the fetch raw, record it as held (the previous landing stays current), and tell people.

        Returns
        -------
        ``{"outcome": "held", ...}``
        """
        request = fetched.request
        parts, _ = self.write_parts(fetched)
        now = datetime.now(UTC)
        kept = describe_kept(previous)
        record = HeldLanding(
            run_id=request.run_id,
            source=request.source,
            dataset=request.dataset,
            created_at=now,
            fetched_at=fetched.fetched_at,
            source_url=fetched.source_url,
            content_sha256=fetched.content_sha256,
            reason=reason,
            check=check,
            acceptable=acceptable,
            parts=parts,
            kept={k: previous.get(k) for k in ("manifest_key", "landed_at", "record_count", "content_sha256")},
            proof=fetched.proof,
        )
        key = held_key(request.source, request.dataset, request.requested_at, fetched.content_sha256)
        self.publish_held(record, key, kept)
        self.remember_hold(request, previous, fetched.content_sha256, key, reason, now)
        return {
            "outcome": "held",
            "source": request.source.value,
            "dataset": request.dataset,
            "reason": reason,
            "check": check,
            "held_key": key,
        }

    def publish_held(self, record: HeldLanding, key: str, kept: str) -> None:
        """Write a held snapshot's record beside its raw parts, and tell the pipeline (``dataset.held``)."""
        put_object(
            self.lake,
            key,
            record.model_dump_json(indent=1).encode(),
            object_metadata(record.run_id, record.source_url, record.content_sha256, None),
            "application/json",
        )
        self.publish(
            DatasetHeld(
                run_id=record.run_id,
                source=record.source,
                dataset=record.dataset,
                reason=record.reason[:4000],
                check=record.check,
                held_key=key,
                kept=kept,
                acceptable=record.acceptable,
                counts={"records": sum(p.records or 0 for p in record.parts)},
                keys=[p.key for p in record.parts],
            )
        )
        telemetry.count("DatasetsHeld", source=record.source.value)
        logger.warning(
            "snapshot held", extra={"reason": record.reason, "check": record.check, "held_key": key, "kept": kept}
        )

    def remember_hold(
        self, request: ExtractRequest, previous: dict[str, Any], sha256: str, key: str, reason: str, now: datetime
    ) -> None:
        """Count consecutive runs holding the same content (the rule that accepts a persistent drop)."""
        same = previous.get("held_sha256") == sha256
        if same and previous.get("held_run_id") == request.run_id:
            return  # a redelivery within the run
        runs = int(previous.get("held_runs") or 0) + 1 if same else 1
        self.state.update(
            dataset_pk(request.source.value, request.dataset),
            STATE_SK,
            set_values={
                "held_sha256": sha256,
                "held_runs": runs,
                "held_run_id": request.run_id,
                "held_since": previous.get("held_since") if same else now.isoformat(),
                "held_key": key,
                "held_reason": reason[:1000],
                "last_checked_at": now.isoformat(),
                "last_run_id": request.run_id,
            },
        )

    def superseded(self, request: ExtractRequest, newer: str) -> dict[str, Any]:
        """A newer fetch (another run) already landed this dataset: this older one replaces nothing."""
        logger.info("an older fetch than the landed one; not landed", extra={"landed_fetched_at": newer})
        telemetry.count("DatasetsSuperseded", source=request.source.value)
        result = self.unchanged(request, self.last_landing(request)["content_sha256"], {"superseded": 1})
        return {**result, "outcome": "superseded", "newer_fetched_at": newer}

    def put_shared(self, shared: SharedObject, run_id: str) -> tuple[PutResult, int]:
        """Write a shared object unless this invocation already did; returns it and the bytes written now.

        Raises
        ------
        LakeError
            When S3 refuses; nothing is remembered, so the next landing that needs the object tries again.
        """
        if shared.written is not None:
            return shared.written, 0
        shared.written = put_object(
            self.lake,
            shared.key,
            shared.body,
            object_metadata(run_id, shared.source_url, shared.sha256, shared.records),
            shared.content_type,
        )
        return shared.written, shared.size

    def commit(self, manifest: Manifest, key: str) -> PutResult:
        """Write the manifest: the last object of a landing."""
        return put_object(
            self.lake,
            key,
            manifest.model_dump_json(indent=1).encode(),
            object_metadata(manifest.run_id, manifest.source_url, manifest.content_sha256, manifest.record_count),
            "application/json",
        )

    def record_landing(
        self,
        manifest: Manifest,
        key: str,
        counts: dict[str, int],
        measures: dict[str, Any] | None = None,
        restored: list[str] | None = None,
    ) -> dict[str, Any]:
        """After the manifest: remember the hash (change detection) and announce the landing.

        The state write is a compare-and-set on ``fetched_at``: when a fetch that started later has already been
        recorded (an overlapping run), this one is superseded; its manifest names older data, which the
        transformer's own ordering (by ``fetched_at``) keeps from replacing the newer staging.
        """
        now = datetime.now(UTC).isoformat()
        fetched_at = utc_stamp(manifest.fetched)
        try:
            self.state.update(
                dataset_pk(manifest.source.value, manifest.dataset),
                STATE_SK,
                set_values={
                    "content_sha256": manifest.content_sha256,
                    "manifest_key": key,
                    "landed_at": now,
                    "fetched_at": fetched_at,
                    "last_checked_at": now,
                    "last_run_id": manifest.run_id,
                    "record_count": manifest.record_count,
                    "measures": measures or {},
                    "held_sha256": None,
                    "held_runs": 0,
                },
                condition="attribute_not_exists(fetched_at) OR fetched_at <= :c_fetched",
                condition_values={":c_fetched": fetched_at},
            )
        except ConditionFailed:
            newer = (self.state.get(dataset_pk(manifest.source.value, manifest.dataset), STATE_SK) or {}).get(
                "fetched_at", "?"
            )
            logger.warning("a newer fetch landed meanwhile; this landing is superseded", extra={"newer": newer})
            return self.superseded(manifest_request(manifest), newer)
        self.publish(
            DatasetExtracted(
                run_id=manifest.run_id,
                source=manifest.source,
                dataset=manifest.dataset,
                manifest_key=key,
                warnings=manifest.warnings,
                restored=restored or [],
                counts=counts,
                keys=[p.key for p in manifest.parts],
            )
        )
        telemetry.count("DatasetsExtracted", source=manifest.source.value)
        logger.info(
            "dataset landed",
            extra={"manifest_key": key, "warnings": len(manifest.warnings), **counts},
        )
        return {
            "outcome": "extracted",
            "source": manifest.source.value,
            "dataset": manifest.dataset,
            "content_sha256": manifest.content_sha256,
            "manifest_key": key,
            "changes": [c.model_dump(mode="json") for c in manifest.changes] if manifest.changes else [],
        }


def describe_kept(previous: dict[str, Any]) -> str:
    """What stays current when a snapshot is held, in words."""
    if not previous.get("manifest_key"):
        return "nothing: no earlier snapshot of this dataset was landed"
    rows = previous.get("record_count")
    rows_text = f"{rows:,} records, " if isinstance(rows, int) else ""
    return f"the previous snapshot ({rows_text}landed {previous.get('landed_at')}, {previous['manifest_key']})"


def manifest_request(manifest: Manifest) -> ExtractRequest:
    """The request a manifest came from (for the outcome of a landing that lost the compare-and-set)."""
    return ExtractRequest(
        run_id=manifest.run_id,
        source=manifest.source,
        dataset=manifest.dataset,
        params=manifest.params,
        trigger=manifest.trigger,
        requested_at=manifest.created_at,
    )
