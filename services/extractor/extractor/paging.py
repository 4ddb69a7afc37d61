"""Paging across invocations: what a checkpoint holds, and when an invocation hands over. Pure logic.

A Socrata dataset of millions of rows does not page in one invocation (300 s). The extractor lands its pages as it
goes, and before its time runs out it writes a checkpoint (the pages landed so far with their hashes, the offset,
the count asked before paging, and the ``:id`` digests seen) and sends a continuation message that resumes from
it. The last invocation proves the whole snapshot (count after paging equal to the rows received, every ``:id``
unique across all invocations) and commits the manifest. ``extractor.checkpoint`` stores checkpoints;
``extractor.socrata`` pages.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

# Time an invocation keeps, besides the next page, to write its checkpoint (flush the spooled pages, the id
# ledger, the state document, a DynamoDB update) and send the continuation.
HANDOVER_RESERVE_SECONDS = 20.0
# The next page is assumed to take as long as this many times the slowest page so far.
NEXT_PAGE_FACTOR = 2.0
# Below this much time left in an invocation, a record is not started: it is sent back to the queue as it is
# (postponed), so a long paging record in the same batch never starves the others into the DLQ.
MIN_START_SECONDS = 45.0
# Pages spooled in /tmp are landed once they reach this size (Lambda's /tmp is 512 MB by default, and a landing
# of a big dataset would not fit it); smaller datasets land whole at the end, and write nothing when unchanged.
SPOOL_LIMIT_BYTES = 96 * 1024 * 1024


def paging_token(run_id: str, dataset: str) -> str:
    """The name of a run's paged landing folder (``{run_ts}-{token}/part-NNNNN.json``).

    Pages are landed before the hash of the whole snapshot is known, and a resumed extraction must land its pages
    where an uninterrupted one would, so the folder is named by the run and the dataset, not by the content.
    """
    return hashlib.sha256(f"{run_id}#{dataset}".encode()).hexdigest()[:12]


def hand_over_now(
    remaining_seconds: float,
    slowest_page_seconds: float,
    pages_this_invocation: int,
    max_pages: int = 0,
) -> bool:
    """Whether to checkpoint and hand over before fetching the next page.

    An invocation always fetches at least one page (so every invocation makes progress and a continuation is never
    sent for nothing); then it stops when the page cap (``max_pages``, 0 for none) is reached, or when the time
    left would not cover the next page plus the handover.
    """
    if pages_this_invocation == 0:
        return False
    if max_pages and pages_this_invocation >= max_pages:
        return True
    return remaining_seconds < HANDOVER_RESERVE_SECONDS + NEXT_PAGE_FACTOR * slowest_page_seconds


@dataclass
class LandedPage:
    """A page already written to the bucket at its final key (with the version that pins it)."""

    key: str
    sha256: str
    bytes: int
    records: int
    version_id: str | None
    source_url: str


@dataclass
class PagingState:
    """What a checkpoint holds: enough to resume paging and, at the end, to prove and commit the snapshot."""

    token: str
    fetched_at: str  # when the first invocation started: the landing's order among landings
    page_size: int
    count_before: int
    rows: int = 0
    without_id: int = 0
    last_rows: int = 0
    pages: list[LandedPage] = field(default_factory=list)
    ledger_keys: list[str] = field(default_factory=list)  # one id-ledger segment per checkpoint
    metadata_key: str | None = None  # the dataset's metadata as the first invocation received it
    metadata_sha256: str | None = None
    metadata_bytes: int = 0
    metadata_url: str = ""
    warnings: list[str] = field(default_factory=list)
    invocations: int = 0

    @property
    def next_offset(self) -> int:
        """Every page before the last one is full, so the rows received are the offset of the next page."""
        return self.rows

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> PagingState:
        """Raises ValueError (or KeyError/TypeError) when the document is not a checkpoint of this shape."""
        values = dict(document)
        values["pages"] = [LandedPage(**page) for page in values.get("pages", [])]
        state = cls(**values)
        paged = sum(p.records for p in state.pages)
        if state.rows != paged:
            raise ValueError(f"a checkpoint counts {state.rows} rows but its pages hold {paged}")
        return state
