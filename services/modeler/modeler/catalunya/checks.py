"""Quality checks of the Catalunya marts that the generic ones (``modeler.checks``) do not cover."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from modeler.catalunya.services import BASELINE, CLOSED, members_before
from modeler.catalunya.territory import check_digit
from modeler.checks import CheckContext, CheckResult, _samples


@dataclass(frozen=True)
class ValidMunicipalityCodes:
    """Every code is six digits whose last is the check digit of the first five (Idescat's code is INE's plus it)."""

    column: str = "municipality_code"

    @property
    def name(self) -> str:
        return f"valid_municipality_codes({self.column})"

    def evaluate(self, table: pa.Table, context: CheckContext) -> CheckResult:
        bad = [
            code
            for code in table[self.column].to_pylist()
            if code is not None and (len(code) != 6 or not code.isdigit() or int(code[5]) != check_digit(code[:5]))
        ]
        if bad:
            return CheckResult(
                self.name, False, f"{len(bad)} code(s) with a wrong check digit, e.g. {_samples(bad)}", len(bad)
            )
        return CheckResult(self.name, True, f"{table.num_rows} codes, every check digit right")


@dataclass(frozen=True)
class ClosedShare:
    """The newest snapshot closes at most ``max_share`` of the services the register held before it.

    A register does not lose half its services between two reads; a snapshot that seems to is truncated or wrong,
    and publishing it would record mass closings that never happened.
    """

    max_share: float = 0.5

    @property
    def name(self) -> str:
        return f"closed_share(max={self.max_share})"

    def evaluate(self, table: pa.Table, context: CheckContext) -> CheckResult:
        events = table.select(["service_id", "snapshot_date", "change"]).to_pylist()
        if not events:
            return CheckResult(self.name, True, "no change recorded")
        newest = max(e["snapshot_date"] for e in events)
        before = members_before(events, newest)
        closed = sum(1 for e in events if e["snapshot_date"] == newest and e["change"] == CLOSED)
        if not before:
            baseline = sum(1 for e in events if e["change"] == BASELINE)
            return CheckResult(self.name, True, f"first snapshot: {baseline} services")
        share = closed / len(before)
        detail = f"{closed} of the {len(before)} services before {newest} closed ({share:.1%})"
        if share > self.max_share:
            return CheckResult(self.name, False, detail + f": more than {self.max_share:.0%}", closed)
        return CheckResult(self.name, True, detail)


@dataclass(frozen=True)
class MostlyPresent:
    """At least ``min_share`` of a column's values are present: a column null everywhere (the register's capacity
    read from a column that is not there) is a broken build, not data."""

    column: str
    min_share: float = 0.9

    @property
    def name(self) -> str:
        return f"mostly_present({self.column},{self.min_share})"

    def evaluate(self, table: pa.Table, context: CheckContext) -> CheckResult:
        if table.num_rows == 0:
            return CheckResult(self.name, True, "no rows")
        present = table.num_rows - table[self.column].null_count
        share = present / table.num_rows
        detail = f"{present} of {table.num_rows} rows have a {self.column} ({share:.1%})"
        return CheckResult(
            self.name, share >= self.min_share, detail, 0 if share >= self.min_share else table.num_rows - present
        )
