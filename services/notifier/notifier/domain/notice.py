"""A notice: one message for people, and the plain-text helpers every notice is written with.

Pure: no boto3, no environment, no Powertools.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from datalake.contracts import PipelineEvent

SUBJECT_LIMIT = 99  # SNS: ASCII, no line breaks, fewer than 100 characters
# SNS refuses a message over 256 KiB, counted in UTF-8 bytes with its attributes; moto counts characters, so a
# body of Catalan names can pass it and fail on AWS. A notice stays under this, with room for the attributes.
MESSAGE_LIMIT_BYTES = 256 * 1024 - 4 * 1024


class Kind(StrEnum):
    FAILURE = "failure"
    QUARANTINE = "quarantine"
    HELD = "held"
    MARTS = "marts"
    ALARM = "alarm"
    SUMMARY = "summary"
    FORWARDED = "forwarded"


@dataclass(frozen=True)
class Notice:
    """One message for people. ``same_as`` is what makes two notices repeats of each other."""

    kind: Kind
    subject: str
    body: str
    same_as: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.kind.value}\n{self.same_as}".encode()).hexdigest()[:32]

    def with_note(self, note: str) -> Notice:
        return Notice(self.kind, self.subject, f"{self.body.rstrip()}\n\n{note}\n", self.same_as)


def ascii_subject(text: str) -> str:
    """An SNS-safe subject: ASCII, one line, fewer than 100 characters."""
    flat = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    flat = re.sub(r"\s+", " ", flat).strip()
    return flat if len(flat) <= SUBJECT_LIMIT else flat[: SUBJECT_LIMIT - 3].rstrip() + "..."


def normalise_reason(reason: str) -> str:
    """The part of a reason that identifies a failure: numbers, times and ids that vary between repeats go."""
    text = reason.lower()
    text = re.sub(r"[0-9a-f]{8,}", "#", text)
    text = re.sub(r"\d+(\.\d+)?", "#", text)
    return re.sub(r"\s+", " ", text).strip()[:300]


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def rows_word(n: int) -> str:
    return "row" if n == 1 else "rows"


def dataset_ref(event: PipelineEvent) -> str | None:
    if event.source is None or event.dataset is None:
        return None
    return f"{event.source.value}/{event.dataset}"


def links_block(lines: Iterable[tuple[str, str | None]]) -> str:
    shown = [f"- {label}: {url}" for label, url in lines if url]
    return "Links:\n" + "\n".join(shown) if shown else ""


def compose(*parts: str) -> str:
    return "\n\n".join(p.strip("\n") for p in parts if p and p.strip()) + "\n"


def size(text: str) -> int:
    """Bytes, as SNS counts them."""
    return len(text.encode())


def fit_groups(groups: list[list[str]], budget: int, more: str = "  ... and {n:,} more like these") -> list[str]:
    """The lines of every group, within ``budget`` bytes (a newline after each): when they do not all fit, each
    group keeps at most its first ``k`` lines, ``k`` the largest that fits, and says how many it left out. A small
    group is therefore kept whole and the long ones are cut alike; the left-out lines are counted, never dropped
    silently."""

    def fitted(k: int) -> list[str]:
        lines: list[str] = []
        for group in groups:
            lines += group[:k]
            if len(group) > k:
                lines.append(more.format(n=len(group) - k))
        return lines

    def cost(lines: list[str]) -> int:
        return sum(size(line) + 1 for line in lines)

    longest = max((len(g) for g in groups), default=0)
    whole = fitted(longest)
    if cost(whole) <= budget:
        return whole
    low, high = 0, longest  # fitted(low) is the answer once the search ends; fitted(high) does not fit
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if cost(fitted(middle)) <= budget else (low, middle)
    return fitted(low)


def fit_message(body: str, limit: int = MESSAGE_LIMIT_BYTES) -> str:
    """The body as sent: whole when it fits, else cut at the last line that fits, saying so."""
    if size(body) <= limit:
        return body
    note = "\n[... the rest of this message is cut: SNS delivers at most 256 KB]\n"
    kept = body.encode()[: limit - size(note)].decode(errors="ignore")
    return kept[: kept.rfind("\n") + 1 or len(kept)].rstrip("\n") + note
