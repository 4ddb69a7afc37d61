"""Proof that a snapshot is whole, and the plausibility guard. Pure logic: no boto3, no HTTP, no Powertools.

A well-formed answer is not yet a whole one. Before a snapshot replaces the previous one, each source's own evidence
must prove it complete:

- Socrata: the row count asked with the same query before and after paging agrees with the rows received; every row
  carries the ``:id`` system field, and no id comes twice; every page before the last is full.
- BLS bulk: each file's size and Last-Modified, as the directory listing states them, agree with the download; a
  data file ends with a newline and its last line has every field of the header.
- BLS API and DataUSA: every series and year asked for is answered (checked where the answer is read).

Then the plausibility guard compares the new snapshot with the previous one: a snapshot that drops much more than
upstream ever does is held (``docs/operations.md#held-snapshots`` says how to accept it).
"""

from __future__ import annotations

import hashlib
import json
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from extractor.errors import BadPayload, TransientFailure

# Between the real BLS pr releases bundled with the project (2025-02 and 2026-08) no series and no row of a data file
# disappeared: upstream only adds and revises. A register (Socrata) loses the services that close, a few in a
# thousand a year. A drop above 5% of the previous rows is therefore held; see docs/operations.md#held-snapshots.
DROP_LIMIT = 0.05
# A drop that persists is genuine: the same content held in this many consecutive runs is accepted by rule.
PERSISTENT_DROP_RUNS = 3
# The listing prints local time to the minute, without a zone; a download's Last-Modified is GMT. Both name the same
# version when they are within a day (any zone) of each other; a file replaced between listing and download moves
# its size, or its date by more.
LISTING_CLOCK_SLACK = timedelta(hours=26)


class IncompleteSnapshot(TransientFailure):
    """The source's own evidence says the snapshot is not whole. Retried; held on the request's last receive."""

    reason_code = "incomplete_snapshot"

    def __init__(self, reason: str, check: str) -> None:
        super().__init__(reason)
        self.check = check


class SnapshotMoved(TransientFailure):
    """The dataset changed while it was being paged (the counts before and after differ): fetch it again later."""

    reason_code = "snapshot_moved"


# ---------------------------------------------------------------------------------------------------------------
# Socrata
# ---------------------------------------------------------------------------------------------------------------

SOCRATA_COUNT_ALIAS = "row_count"
SOCRATA_ID = ":id"


def socrata_count_params() -> dict[str, str]:
    """The row count of the whole dataset, asked with the same (absent) filter as the pages."""
    return {"$select": f"count(*) AS {SOCRATA_COUNT_ALIAS}"}


def socrata_count(body: bytes) -> int:
    """Read ``[{"row_count": "6300"}]`` (SODA answers numbers as strings).

    Raises
    ------
    BadPayload
        When the body is not that shape.
    """
    try:
        document = json.loads(body)
        value = document[0][SOCRATA_COUNT_ALIAS]
        count = int(value)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise BadPayload(f"the row count answer is not [{{{SOCRATA_COUNT_ALIAS!r}: n}}]: {body[:120]!r}") from exc
    if count < 0:
        raise BadPayload(f"the row count answer is negative: {count}")
    return count


class IdLedger:
    """Every ``:id`` of a snapshot, as 64-bit digests in 256 buckets: about 8 bytes a row (40 MB for 5M rows).

    Two distinct ids share a digest with a probability of about n^2 / 2^65 (1e-6 for 5M rows); a false duplicate
    holds the snapshot, it never loses a row.
    """

    BUCKETS = 256

    def __init__(self) -> None:
        self.buckets = [array("Q") for _ in range(self.BUCKETS)]
        self.count = 0
        self._saved = [0] * self.BUCKETS  # per bucket, the digests already written to a checkpoint segment

    def add(self, row_id: str) -> None:
        digest = int.from_bytes(hashlib.blake2b(row_id.encode(), digest_size=8).digest(), "big")
        self.buckets[digest & 0xFF].append(digest)
        self.count += 1

    def duplicates(self) -> int:
        return sum(len(bucket) - len(set(bucket)) for bucket in self.buckets)

    # -- checkpoints: a paged extraction spans invocations, and its ids must be unique across all of them ------
    def unsaved_segment(self) -> bytes:
        """The digests added since the last segment, as one segment: 256 little-endian uint32 counts, then the
        digests (uint64, little-endian) bucket by bucket. Marks them saved."""
        counts = array("I", (len(b) - s for b, s in zip(self.buckets, self._saved, strict=True)))
        body = array("Q")
        for bucket, saved in zip(self.buckets, self._saved, strict=True):
            body.extend(bucket[saved:])
        if sys.byteorder != "little":
            counts.byteswap()
            body.byteswap()
        self._saved = [len(b) for b in self.buckets]
        return counts.tobytes() + body.tobytes()

    def load_segment(self, segment: bytes) -> None:
        """Add the digests of a segment written by ``unsaved_segment`` (a checkpoint being resumed); they count as
        saved.

        Raises
        ------
        ValueError
            When the bytes are not a whole segment.
        """
        header = 4 * self.BUCKETS
        counts = array("I")
        counts.frombytes(segment[:header])
        body = array("Q")
        if len(segment) < header or (len(segment) - header) % 8:
            raise ValueError(f"an id ledger segment of {len(segment)} bytes is not whole")
        body.frombytes(segment[header:])
        if sys.byteorder != "little":
            counts.byteswap()
            body.byteswap()
        if sum(counts) != len(body):
            raise ValueError(f"an id ledger segment counts {sum(counts)} ids but holds {len(body)}")
        start = 0
        for index, count in enumerate(counts):
            self.buckets[index].extend(body[start : start + count])
            start += count
        self.count += len(body)
        self._saved = [len(b) for b in self.buckets]


@dataclass
class PageScan:
    rows: int
    ids: list[str] = field(default_factory=list)
    without_id: int = 0


def scan_rows(text: str) -> PageScan:
    """The rows of one page (a JSON array of objects), decoded one at a time, with their ``:id``.

    Raises
    ------
    BadPayload
        When the text is not one complete JSON array (an HTML page, a truncated body, an error object).
    """
    scan = PageScan(rows=0)
    decoder = json.JSONDecoder()
    size = len(text)
    position = _skip_space(text, 0)
    if position >= size or text[position] != "[":
        raise BadPayload(f"expected a JSON array of rows, got {text[position : position + 40]!r}")
    position = _skip_space(text, position + 1)
    if position < size and text[position] == "]":
        return _ended(text, position + 1, scan)
    while True:
        try:
            row, position = decoder.raw_decode(text, position)
        except ValueError as exc:
            raise BadPayload(f"row {scan.rows} is not valid JSON: {exc}") from exc
        scan.rows += 1
        row_id = row.get(SOCRATA_ID) if isinstance(row, dict) else None
        if isinstance(row_id, str) and row_id:
            scan.ids.append(row_id)
        else:
            scan.without_id += 1
        position = _skip_space(text, position)
        if position < size and text[position] == ",":
            position = _skip_space(text, position + 1)
            continue
        if position < size and text[position] == "]":
            return _ended(text, position + 1, scan)
        raise BadPayload(f"the JSON array ends early after {scan.rows} rows (truncated?)")


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _ended(text: str, position: int, scan: PageScan) -> PageScan:
    if _skip_space(text, position) != len(text):
        raise BadPayload("unexpected data after the JSON array")
    return scan


@dataclass(frozen=True)
class SocrataEvidence:
    """What paging one dataset showed."""

    count_before: int
    count_after: int
    rows: int
    duplicate_ids: int
    rows_without_id: int
    page_size: int
    last_page_rows: int
    pages: int

    def as_proof(self) -> dict[str, int | str | bool]:
        return {
            "count_before": self.count_before,
            "count_after": self.count_after,
            "rows": self.rows,
            "duplicate_ids": self.duplicate_ids,
            "rows_without_id": self.rows_without_id,
            "pages": self.pages,
            "page_size": self.page_size,
        }


def check_socrata(evidence: SocrataEvidence) -> None:
    """Whether the pages hold the whole dataset once.

    Raises
    ------
    SnapshotMoved
        When the count changed while paging (an update upstream): fetching again later gives a consistent snapshot.
    IncompleteSnapshot
        When the rows received are not the counted rows, once each.
    """
    e = evidence
    if e.count_before != e.count_after:
        raise SnapshotMoved(f"the dataset's row count moved from {e.count_before} to {e.count_after} while paging")
    if e.rows_without_id:
        raise IncompleteSnapshot(
            f"{e.rows_without_id} of {e.rows} rows carry no {SOCRATA_ID}: their uniqueness cannot be proven",
            check="socrata.id",
        )
    if e.duplicate_ids:
        raise IncompleteSnapshot(
            f"{e.duplicate_ids} rows came twice (a page repeated or shifted): {e.rows} rows received for "
            f"{e.count_after} counted",
            check="socrata.unique_ids",
        )
    if e.rows != e.count_after:
        short = (
            f"; paging stopped at a page of {e.last_page_rows} rows (page size {e.page_size})"
            if e.rows < e.count_after
            else ""
        )
        raise IncompleteSnapshot(
            f"{e.rows} rows received but the dataset counts {e.count_after}{short}", check="socrata.row_count"
        )


# ---------------------------------------------------------------------------------------------------------------
# BLS bulk
# ---------------------------------------------------------------------------------------------------------------


def listing_time(stamp: str | None) -> datetime | None:
    """``8/6/2026 8:30 AM`` (the listing's local time, no zone) as a naive datetime, or None."""
    if not stamp:
        return None
    try:
        return datetime.strptime(stamp, "%m/%d/%Y %I:%M %p")
    except ValueError:
        return None


def http_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def bulk_file_problems(
    name: str,
    listed_size: int | None,
    listed_modified: str | None,
    size: int,
    last_modified: str | None,
    tail: bytes,
    header: bytes,
    is_data: bool,
) -> list[str]:
    """What disproves that a download is the whole file the listing names (empty when nothing does).

    ``tail``: the last bytes of the download; ``header``: its first line.
    """
    problems = []
    if listed_size is not None and size != listed_size:
        problems.append(f"{name}: {size} bytes downloaded, the listing states {listed_size}")
    listed, served = listing_time(listed_modified), http_time(last_modified)
    if listed is not None and served is not None and abs(listed - served) > LISTING_CLOCK_SLACK:
        problems.append(f"{name}: served as of {last_modified}, the listing dates it {listed_modified}")
    if is_data and size:
        if not tail.endswith(b"\n"):
            problems.append(f"{name} does not end with a newline (cut inside its last line)")
        else:
            last = tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
            wanted, found = header.count(b"\t"), last.count(b"\t")
            if last.strip() and found != wanted:
                problems.append(f"{name}: its last line has {found + 1} fields, the header {wanted + 1}")
    return problems


# ---------------------------------------------------------------------------------------------------------------
# The plausibility guard
# ---------------------------------------------------------------------------------------------------------------


def dropped_fraction(previous: int | None, current: int) -> float:
    """The share of the previous count that the new one lacks (0 when it grew, or there was none)."""
    if not previous or current >= previous:
        return 0.0
    return (previous - current) / previous


def row_drop(what: str, previous: int | None, current: int, limit: float = DROP_LIMIT) -> str | None:
    """The reason to hold a snapshot whose rows fell by more than ``limit`` of the previous ones, or None."""
    fraction = dropped_fraction(previous, current)
    if fraction <= limit:
        return None
    return (
        f"{what} has {current:,} rows where the previous snapshot had {previous:,} ({fraction:.0%} fewer; upstream "
        f"drops at most {limit:.0%} between releases)"
    )


def missing_values(what: str, kind: str, previous: Iterable[Any] | None, current: Sequence[Any]) -> str | None:
    """The reason to hold a snapshot that lacks some ``kind`` (years, series) the previous one had, or None."""
    lost = sorted(set(previous or ()) - set(current))
    if not lost:
        return None
    shown = ", ".join(str(v) for v in lost[:10]) + (f" and {len(lost) - 10} more" if len(lost) > 10 else "")
    return f"{what} no longer answers {len(lost)} {kind} the previous snapshot had: {shown}"


def drop_accepted(accept_drop: bool, run_id: str, held: dict[str, Any], sha256: str) -> str | None:
    """Why a drop the guard would hold is accepted, or None: the operator said so (``accept_drop``), or the same
    content (``sha256``) was held in ``PERSISTENT_DROP_RUNS`` consecutive runs, this one included.

    ``held``: the state of the last hold (``held_sha256``, ``held_runs``, ``held_run_id``, ``held_since``).
    """
    if accept_drop:
        return f"the operator accepted the drop (run {run_id})"
    runs = int(held.get("held_runs") or 0) + (held.get("held_run_id") != run_id)
    if held.get("held_sha256") == sha256 and runs >= PERSISTENT_DROP_RUNS:
        since = f" since {held['held_since']}" if held.get("held_since") else ""
        return f"by rule: the same content was held in {runs} consecutive runs{since}"
    return None


def now_utc() -> datetime:
    return datetime.now(UTC)
