"""The fault plan's format: what a plan file (JSON) may script, validated before anything runs.

The format is documented for users in ``tests/fixtures/faults/README.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from localrun.replay import ENDPOINTS

if TYPE_CHECKING:
    pass

SourceFaultKind = Literal[
    "timeout",
    "reset",
    "http_500",
    "http_503",
    "http_429",
    "truncated",
    "truncated_json",
    "html_200",
    "not_processed",
    "schema_drift",
    "slow_drip",
    "cut_body",
    "listing_omits",
    "page_repeated",
    "page_skipped",
    "page_empty",
    "page_short",
    "series_missing",
    "year_missing",
]
PAGE_FAULTS = ("page_repeated", "page_skipped", "page_empty", "page_short")
# Faults that need the answer of one endpoint in particular.
ENDPOINT_OF_KIND = {
    "not_processed": "bls_api",
    "listing_omits": "bls_bulk_listing",
    "series_missing": "bls_api",
    "year_missing": "datausa",
    **dict.fromkeys(PAGE_FAULTS, "socrata_rows"),
}
PIPELINE_QUEUES = ("ExtractQueue", "TransformQueue", "ModelQueue", "NotifyQueue")
DRIFTABLE = ("bls_api", "datausa", "socrata_rows", "socrata_views", "bls_bulk_file")


class _Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceFault(_Plan):
    """One scripted source fault. It applies to the requests matching ``endpoint`` and ``dataset`` (both optional),
    the first ``attempts`` of them (every one when None)."""

    kind: SourceFaultKind
    endpoint: str | None = None
    dataset: str | None = None  # a series id, a Socrata id, "population", a bulk survey or a bulk file name
    attempts: int | None = Field(default=None, ge=1)
    retry_after: int = Field(default=1, ge=0, le=3600)  # http_429
    delay_seconds: float = Field(default=5.0, gt=0, le=600)  # timeout: longer than the client's read timeout
    drip_bytes_per_second: int = Field(default=2048, ge=10)  # slow_drip
    keep_fraction: float = Field(default=0.5, gt=0, lt=1)  # truncated, truncated_json, cut_body
    at_line_boundary: bool = False  # cut_body: cut after the last whole line before keep_fraction
    files: list[str] = []  # listing_omits: the file names the listing leaves out
    page: int | None = Field(default=None, ge=0)  # page_*: the 0-based page (offset // limit) it answers wrong
    year: int | None = None  # year_missing: the year the answer leaves out

    @model_validator(mode="after")
    def _applies_somewhere(self) -> SourceFault:
        if self.endpoint is not None and self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint {self.endpoint!r} is not one of {', '.join(ENDPOINTS)}")
        wanted = ENDPOINT_OF_KIND.get(self.kind)
        if wanted is not None and self.endpoint != wanted:
            raise ValueError(f"{self.kind} is an answer of {wanted}: set endpoint to {wanted}")
        if self.kind == "listing_omits" and not self.files:
            raise ValueError("listing_omits needs files: the names the listing leaves out")
        if self.kind in PAGE_FAULTS and self.page is None:
            raise ValueError(f"{self.kind} needs page: the 0-based page index it answers wrong")
        if self.kind == "page_repeated" and self.page == 0:
            raise ValueError("page_repeated repeats the page before: page must be 1 or more")
        if self.kind == "year_missing" and self.year is None:
            raise ValueError("year_missing needs year: the year the answer leaves out")
        if self.kind == "schema_drift" and self.endpoint not in DRIFTABLE:
            raise ValueError(f"schema_drift needs an endpoint among {', '.join(DRIFTABLE)}")
        return self

    def describe(self) -> str:
        target = "/".join(t for t in (self.endpoint, self.dataset) if t) or "every request"
        if self.page is not None:
            target += f" page {self.page}"
        clears = "never clears" if self.attempts is None else f"clears after {self.attempts}"
        return f"{self.kind} on {target} ({clears})"


class DeliveryFault(_Plan):
    """``duplicate``: each message of the queue is delivered ``copies`` times in all. ``poison``: ``body`` (or one
    that breaks the queue's contract) is put into the queue before the run starts."""

    kind: Literal["duplicate", "poison"]
    queue: Literal["ExtractQueue", "TransformQueue", "ModelQueue", "NotifyQueue"]
    copies: int = Field(default=3, ge=2, le=10)
    body: str | None = None


class AwsFault(_Plan):
    """``error``: the call is answered with ``status``/``code`` (before it is sent; botocore retries as it would).
    ``crash``: the function's process dies just ``before`` the call, or just ``after`` it succeeded.
    ``key`` is an fnmatch pattern over the S3 key; ``times`` is how many matching calls (every one when None)."""

    kind: Literal["error", "crash"]
    service: Literal["s3"] = "s3"
    operation: str = Field(default="PutObject", pattern=r"^[A-Z][A-Za-z]+$")
    key: str = "*"
    status: int = Field(default=500, ge=400, le=599)
    code: str = "InternalError"
    when: Literal["before", "after"] = "before"
    times: int | None = Field(default=1, ge=1)

    def describe(self) -> str:
        what = f"{self.status} {self.code}" if self.kind == "error" else f"crash {self.when}"
        times = "every call" if self.times is None else f"{self.times} call(s)"
        return f"{self.service} {self.operation} {self.key}: {what}, {times}"


class HttpTuning(_Plan):
    """The extractor's HTTP timings while a plan is installed (production: backoff 0.5, jitter 0.5, read 60 s)."""

    backoff_factor: float = Field(default=0.05, ge=0)
    backoff_jitter: float = Field(default=0.05, ge=0)
    read_timeout: float = Field(default=2.0, gt=0)


class PlanDocument(_Plan):
    name: str = "faults"
    http: HttpTuning = HttpTuning()
    source: list[SourceFault] = []
    delivery: list[DeliveryFault] = []
    aws: list[AwsFault] = []
    record_writes: bool = False  # count every S3 write request per key (the run record's faults.writes)
    # Socrata's page size while the plan runs, so page faults can be rehearsed on a small dataset
    socrata_page_size: int | None = Field(default=None, ge=1, le=50_000)
