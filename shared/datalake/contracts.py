"""Contracts between the services: one pydantic model serves the producer, the consumer and the tests.

Every message body, manifest and pipeline event is validated against these models at the edge of each
function, so untrusted input never reaches an S3 key or a query unchecked.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

# Dataset ids end up in S3 keys: letters, digits, '_', '-', '.'; no '..', no '/', no leading '.'.
DATASET_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
RUN_ID_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"
BLS_SERIES_PATTERN = r"^[A-Z0-9]{3,30}$"
SOCRATA_ID_PATTERN = r"^[a-z0-9]{4}-[a-z0-9]{4}$"
BLS_SURVEY_PATTERN = r"^[a-z]{2}$"

DatasetId = Annotated[str, Field(pattern=DATASET_ID_PATTERN)]
RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Source(StrEnum):
    BLS_API = "bls_api"
    BLS_BULK = "bls_bulk"
    DATAUSA = "datausa"
    SOCRATA = "socrata"


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    BACKFILL = "backfill"


DATASET_PATTERNS: dict[Source, str] = {
    Source.BLS_API: BLS_SERIES_PATTERN,
    Source.BLS_BULK: BLS_SURVEY_PATTERN,
    Source.DATAUSA: DATASET_ID_PATTERN,
    Source.SOCRATA: SOCRATA_ID_PATTERN,
}


def validate_dataset_id(source: Source, dataset: str) -> str:
    """Check a dataset id against the generic key-safe pattern and its source's own shape.

    Raises
    ------
    ValueError
        When the id could escape its S3 prefix or does not look like an id of that source.
    """
    if not re.fullmatch(DATASET_ID_PATTERN, dataset) or ".." in dataset:
        raise ValueError(f"dataset id {dataset!r} is not a safe identifier")
    if not re.fullmatch(DATASET_PATTERNS[source], dataset):
        raise ValueError(f"dataset id {dataset!r} is not a valid {source.value} id ({DATASET_PATTERNS[source]})")
    return dataset


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Contract(BaseModel):
    # defer_build: a model's validator is built on first use, so a function pays only for the contracts it uses.
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, defer_build=True)


class ExtractParams(_Contract):
    """Source-specific knobs of one extraction. Absent values mean "the source's default window"."""

    start_year: int | None = Field(default=None, ge=1900, le=2100)
    end_year: int | None = Field(default=None, ge=1900, le=2100)
    catalog: bool = False
    page_size: int | None = Field(default=None, ge=1, le=50_000)
    # the operator accepts a snapshot that drops more than the plausibility guard allows (an explicit decision)
    accept_drop: bool = False

    @model_validator(mode="after")
    def _window_is_ordered(self) -> ExtractParams:
        if self.start_year is not None and self.end_year is not None and self.start_year > self.end_year:
            raise ValueError(f"start_year {self.start_year} is after end_year {self.end_year}")
        return self


class Continuation(_Contract):
    """Marks an ExtractQueue message that continues a paged extraction another invocation checkpointed.

    ``segment`` is the checkpoint it resumes from (1, 2, ...): each continuation is its own unit of work (its own
    idempotency record), and only the message holding the checkpoint's current segment may page further.
    """

    segment: int = Field(ge=1, le=100_000)


class ExtractRequest(_Contract):
    """The body of one ExtractQueue message: one series or dataset to fetch."""

    run_id: RunId
    source: Source
    dataset: DatasetId
    params: ExtractParams = Field(default_factory=ExtractParams)
    trigger: Trigger = Trigger.SCHEDULE
    requested_at: datetime = Field(default_factory=utc_now)
    continuation: Continuation | None = None

    @model_validator(mode="after")
    def _dataset_matches_source(self) -> ExtractRequest:
        validate_dataset_id(self.source, self.dataset)
        if self.continuation is not None and self.source is not Source.SOCRATA:
            raise ValueError(f"only a Socrata extraction is paged across invocations, not {self.source.value}")
        return self

    @property
    def idempotency_key(self) -> str:
        """The business key of the unit of work (the extractor's JMESPath ``IDEMPOTENCY_KEY`` computes the same)."""
        base = f"{self.run_id}#{self.source.value}#{self.dataset}"
        return f"{base}#{self.continuation.segment}" if self.continuation is not None else base

    def continued(self, segment: int) -> ExtractRequest:
        """The message that resumes this extraction from checkpoint ``segment``."""
        return self.model_copy(update={"continuation": Continuation(segment=segment)})


class ManifestPart(_Contract):
    """One object of a landing. ``version_id`` pins the exact version of an object mirrored in place."""

    key: str
    sha256: Sha256
    bytes: int = Field(ge=0)
    records: int | None = Field(default=None, ge=0)
    version_id: str | None = None
    role: Literal["data", "metadata", "mapping"] = "data"
    name: str | None = None  # the upstream file name, for the bulk mirror
    # A BLS API response stored once for the up to 50 series of its POST: the series this landing takes from it
    # (``Results.series[seriesID == select_series]``); ``records`` then counts that series' observations only.
    select_series: str | None = Field(default=None, pattern=BLS_SERIES_PATTERN)

    @field_validator("key")
    @classmethod
    def _key_is_landing(cls, key: str) -> str:
        if not key.startswith("landing/") or ".." in key.split("/"):
            raise ValueError(f"manifest part key {key!r} is outside landing/")
        return key


class FileChange(_Contract):
    """What a bulk sync did to one mirrored file."""

    name: str
    # restored: a file the mirror's state knew but the bucket had lost, written again from upstream
    action: Literal["added", "changed", "deleted", "restored"]
    key: str
    bytes: int | None = None
    sha256: Sha256 | None = None
    last_modified: str | None = None


class Manifest(_Contract):
    """Commits a landing. Written last, so the transformer never sees half a landing."""

    manifest_version: Literal[1] = 1
    run_id: RunId
    source: Source
    dataset: DatasetId
    trigger: Trigger = Trigger.SCHEDULE
    created_at: datetime
    source_url: str
    content_sha256: Sha256
    parts: list[ManifestPart]
    changes: list[FileChange] = []
    warnings: list[str] = []
    params: ExtractParams = Field(default_factory=ExtractParams)
    # When the fetch started: the order of landings. A landing fetched earlier never replaces one fetched later,
    # whichever commits last (absent in older manifests: created_at stands in).
    fetched_at: datetime | None = None
    # The source's evidence that this snapshot is whole (row counts, unique ids, listed sizes), as checked.
    proof: dict[str, int | str | bool] = {}

    @model_validator(mode="after")
    def _dataset_matches_source(self) -> Manifest:
        validate_dataset_id(self.source, self.dataset)
        return self

    @property
    def data_parts(self) -> list[ManifestPart]:
        return [p for p in self.parts if p.role == "data"]

    @property
    def fetched(self) -> datetime:
        """When the data was fetched (the ordering key of landings)."""
        return self.fetched_at or self.created_at

    @property
    def record_count(self) -> int:
        return sum(p.records or 0 for p in self.data_parts)


class HeldLanding(_Contract):
    """A snapshot landed raw but held: it could not be proven whole, or it drops more than upstream ever does.

    Written at ``...{run_ts}-{sha12}.held.json`` beside the raw parts. It is not a manifest, so nothing stages it;
    the previous snapshot stays current. ``acceptable``: the operator may accept it (a plausibility hold), which a
    failed proof of completeness never is.
    """

    held_version: Literal[1] = 1
    run_id: RunId
    source: Source
    dataset: DatasetId
    created_at: datetime
    fetched_at: datetime
    source_url: str
    content_sha256: Sha256
    reason: str
    check: str
    acceptable: bool = False
    parts: list[ManifestPart]
    kept: dict[str, Any] = {}
    proof: dict[str, int | str | bool] = {}


# --------------------------------------------------------------------------------------------------------------
# Pipeline events (SNS PipelineTopic, message attribute ``event_type`` for subscription filter policies)
# --------------------------------------------------------------------------------------------------------------


class EventType(StrEnum):
    RUN_STARTED = "run.started"
    DATASET_EXTRACTED = "dataset.extracted"
    DATASET_UNCHANGED = "dataset.unchanged"
    DATASET_STAGED = "dataset.staged"
    DATASET_QUARANTINED = "dataset.quarantined"
    DATASET_HELD = "dataset.held"
    MARTS_BUILT = "marts.built"
    STAGE_FAILED = "stage.failed"


class _Event(_Contract):
    run_id: RunId
    occurred_at: datetime = Field(default_factory=utc_now)
    source: Source | None = None
    dataset: DatasetId | None = None
    counts: dict[str, int] = {}
    keys: list[str] = []


class RunStarted(_Event):
    event_type: Literal[EventType.RUN_STARTED] = EventType.RUN_STARTED
    trigger: Trigger
    datasets: list[str]  # "source/dataset" of every ExtractRequest sent


class DatasetExtracted(_Event):
    event_type: Literal[EventType.DATASET_EXTRACTED] = EventType.DATASET_EXTRACTED
    manifest_key: str
    warnings: list[str] = []
    restored: list[str] = []  # what the state said existed but was gone, landed again (self-healing), in words


class DatasetUnchanged(_Event):
    event_type: Literal[EventType.DATASET_UNCHANGED] = EventType.DATASET_UNCHANGED
    content_sha256: Sha256


class StagedTable(_Contract):
    table: str
    rows_in: int = Field(ge=0)
    rows_written: int = Field(ge=0)
    rows_quarantined: int = Field(ge=0, default=0)
    rows_retired: int = Field(ge=0, default=0)  # keys a new full snapshot no longer holds (kept in the history)
    partitions: list[str] = []


class DatasetStaged(_Event):
    event_type: Literal[EventType.DATASET_STAGED] = EventType.DATASET_STAGED
    manifest_key: str
    tables: list[StagedTable]


class DatasetQuarantined(_Event):
    event_type: Literal[EventType.DATASET_QUARANTINED] = EventType.DATASET_QUARANTINED
    manifest_key: str
    reason: str
    quarantine_key: str


class DatasetHeld(_Event):
    """A snapshot that could not replace the previous one: landed raw (``held_key``), the previous one kept."""

    event_type: Literal[EventType.DATASET_HELD] = EventType.DATASET_HELD
    reason: str
    check: str
    held_key: str
    kept: str  # what stays current, in words (the previous landing, its rows and time), or "nothing yet"
    acceptable: bool = False


class BuiltMart(_Contract):
    name: str
    rows: int = Field(ge=0)
    key: str


class QuarantinedRows(_Contract):
    """Source rows a mart could not use (a Catalunya row whose municipality does not resolve), set aside with
    their reasons in ``quarantine_key``; the rest of the dataset was modelled."""

    mart: str
    source: Source
    dataset: DatasetId
    rows_in: int = Field(ge=0)
    rows_quarantined: int = Field(ge=0)
    reason: str  # how many of how many, and examples with their reasons
    quarantine_key: str


class MartsBuilt(_Event):
    event_type: Literal[EventType.MARTS_BUILT] = EventType.MARTS_BUILT
    marts: list[BuiltMart]
    skipped: list[str] = []
    skipped_reasons: dict[str, str] = {}  # mart -> why it was not rebuilt (its previous version is kept)
    quarantined: list[QuarantinedRows] = []  # rows set aside by this build (newly, or changed since the last one)


class StageFailed(_Event):
    event_type: Literal[EventType.STAGE_FAILED] = EventType.STAGE_FAILED
    stage: Literal["scheduler", "extractor", "transformer", "modeler", "notifier"]
    reason: str
    error_type: str
    check: str | None = None  # the failing quality check, for the modeler


PipelineEvent = Annotated[
    RunStarted
    | DatasetExtracted
    | DatasetUnchanged
    | DatasetStaged
    | DatasetQuarantined
    | DatasetHeld
    | MartsBuilt
    | StageFailed,
    Field(discriminator="event_type"),
]


@cache
def _pipeline_event_adapter() -> TypeAdapter[PipelineEvent]:
    return TypeAdapter(PipelineEvent)


def parse_pipeline_event(data: str | bytes | dict[str, Any]) -> PipelineEvent:
    """Parse a pipeline event from its JSON text or decoded dict.

    Raises
    ------
    pydantic.ValidationError
        When the payload is not a known event type or misses a required field.
    """
    adapter = _pipeline_event_adapter()
    if isinstance(data, str | bytes):
        return adapter.validate_json(data)
    return adapter.validate_python(data)


# --------------------------------------------------------------------------------------------------------------
# Scheduler input (a manual or backfill invoke; the scheduled EventBridge event carries none of it)
# --------------------------------------------------------------------------------------------------------------


class ScheduleRequest(_Contract):
    """What a manual invoke may ask of the scheduler. Every field is optional; an empty request means all."""

    trigger: Trigger = Trigger.MANUAL
    sources: list[Source] | None = None
    datasets: list[str] | None = None
    start_year: int | None = Field(default=None, ge=1900, le=2100)
    end_year: int | None = Field(default=None, ge=1900, le=2100)
    run_id: RunId | None = None
    # the operator accepts a drop the plausibility guard held (docs/operations.md#held-snapshots)
    accept_drop: bool = False

    @field_validator("sources", "datasets")
    @classmethod
    def _not_empty(cls, value: list[Any] | None, info: Any) -> list[Any] | None:
        if value is not None and not value:
            raise ValueError(f"{info.field_name} is an empty list: omit it to select the whole catalog")
        return value

    @model_validator(mode="after")
    def _backfill_has_window(self) -> ScheduleRequest:
        if self.trigger is Trigger.BACKFILL and self.start_year is None:
            raise ValueError("a backfill needs start_year (and optionally end_year)")
        if self.start_year is not None and self.end_year is not None and self.start_year > self.end_year:
            raise ValueError(f"start_year {self.start_year} is after end_year {self.end_year}")
        if self.trigger is Trigger.SCHEDULE:
            raise ValueError("trigger 'schedule' is reserved for the EventBridge schedule")
        return self
