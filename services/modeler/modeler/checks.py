"""Data-quality checks on a mart before it is published. Pure: a check reads a table and returns a result.

A mart declares its checks in the registry. Every check runs; any failure blocks that mart's publication (the
previous version stays) and the modeler emits ``stage.failed`` naming the check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    failing_rows: int = 0

    def as_dict(self) -> dict:
        return {"check": self.name, "passed": self.passed, "detail": self.detail, "failing_rows": self.failing_rows}


@dataclass(frozen=True)
class CheckContext:
    """What a check may compare against: the published version's row count and the mart's (selected) inputs."""

    previous_rows: int | None = None
    inputs: Mapping[str, pa.Table] = field(default_factory=dict)


class Check(Protocol):
    @property
    def name(self) -> str: ...

    def evaluate(self, table: pa.Table, context: CheckContext) -> CheckResult: ...


def _samples(values: Sequence, limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "")


@dataclass(frozen=True)
class NotNull:
    columns: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"not_null({','.join(self.columns)})"

    def evaluate(self, table: pa.Table, context: CheckContext) -> CheckResult:
        nulls = {c: table[c].null_count for c in self.columns}
        bad = {c: n for c, n in nulls.items() if n}
        if bad:
            detail = "; ".join(f"{c}: {n} null(s)" for c, n in bad.items())
            return CheckResult(self.name, False, detail, max(bad.values()))
        return CheckResult(self.name, True, f"no nulls in {table.num_rows} rows")


@dataclass(frozen=True)
class UniqueKey:
    columns: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"unique({','.join(self.columns)})"

    def evaluate(self, table: pa.Table, context: CheckContext) -> CheckResult:
        counts = table.group_by(list(self.columns), use_threads=False).aggregate([([], "count_all")])
        duplicated = counts.filter(pc.greater(counts["count_all"], 1))
        if duplicated.num_rows:
            keys = [tuple(r[c] for c in self.columns) for r in duplicated.slice(0, 5).to_pylist()]
            rows = pc.sum(duplicated["count_all"]).as_py()
            return CheckResult(
                self.name, False, f"{duplicated.num_rows} duplicated key(s), e.g. {_samples(keys)}", int(rows)
            )
        return CheckResult(self.name, True, f"{table.num_rows} unique keys")


@dataclass(frozen=True)
class AcceptedValues:
    column: str
    values: tuple[str | int | bool, ...]

    @property
    def name(self) -> str:
        return f"accepted_values({self.column})"

    def evaluate(self, table: pa.Table, context: CheckContext) -> CheckResult:
        column = table[self.column]
        accepted = pc.is_in(column, value_set=pa.array(self.values, type=column.type))
        rejected = table.filter(pc.and_(pc.is_valid(column), pc.invert(accepted)))
        if rejected.num_rows:
            found = sorted({str(v) for v in rejected[self.column].to_pylist()})
            return CheckResult(self.name, False, f"unexpected values {_samples(found)}", rejected.num_rows)
        return CheckResult(self.name, True, f"every {self.column} is one of {len(self.values)} accepted values")


@dataclass(frozen=True)
class InRange:
    column: str
    minimum: float | None = None
    maximum: float | None = None

    @property
    def name(self) -> str:
        return f"in_range({self.column},{self.minimum},{self.maximum})"

    def evaluate(self, table: pa.Table, context: CheckContext) -> CheckResult:
        column = table[self.column]
        bad = pa.chunked_array([pa.array([False] * table.num_rows)]) if table.num_rows else None
        if bad is None:
            return CheckResult(self.name, True, "no rows")
        if self.minimum is not None:
            bad = pc.or_(bad, pc.fill_null(pc.less(column, self.minimum), False))
        if self.maximum is not None:
            bad = pc.or_(bad, pc.fill_null(pc.greater(column, self.maximum), False))
        outside = table.filter(bad)
        if outside.num_rows:
            return CheckResult(
                self.name,
                False,
                f"{outside.num_rows} value(s) outside [{self.minimum}, {self.maximum}], "
                f"e.g. {_samples(outside[self.column].to_pylist())}",
                outside.num_rows,
            )
        return CheckResult(self.name, True, f"every {self.column} within [{self.minimum}, {self.maximum}]")


@dataclass(frozen=True)
class RowCount:
    minimum: int = 1
    maximum: int | None = None

    @property
    def name(self) -> str:
        return f"row_count({self.minimum}..{'' if self.maximum is None else self.maximum})"

    def evaluate(self, table: pa.Table, context: CheckContext) -> CheckResult:
        n = table.num_rows
        ok = n >= self.minimum and (self.maximum is None or n <= self.maximum)
        return CheckResult(self.name, ok, f"{n} rows", 0 if ok else n)


@dataclass(frozen=True)
class RowCountDelta:
    """The row count moves within bounds of the published version's: a truncated input must not wipe a mart."""

    max_drop: float = 0.5
    max_growth: float | None = None

    @property
    def name(self) -> str:
        growth = "" if self.max_growth is None else f",max_growth={self.max_growth}"
        return f"row_count_delta(max_drop={self.max_drop}{growth})"

    def evaluate(self, table: pa.Table, context: CheckContext) -> CheckResult:
        previous, n = context.previous_rows, table.num_rows
        if not previous:
            return CheckResult(self.name, True, f"{n} rows, no previous version to compare")
        change = (n - previous) / previous
        if change < -self.max_drop:
            return CheckResult(
                self.name, False, f"{n} rows against {previous} published: -{-change:.0%} > -{self.max_drop:.0%}", n
            )
        if self.max_growth is not None and change > self.max_growth:
            return CheckResult(
                self.name, False, f"{n} rows against {previous} published: +{change:.0%} > +{self.max_growth:.0%}", n
            )
        return CheckResult(self.name, True, f"{n} rows against {previous} published ({change:+.1%})")


@dataclass(frozen=True)
class CoversInputKeys:
    """Exactly the keys of an input, no more and no fewer (e.g. one best-year row per series in the file)."""

    column: str
    input_name: str

    @property
    def name(self) -> str:
        return f"covers_input_keys({self.column}<-{self.input_name})"

    def evaluate(self, table: pa.Table, context: CheckContext) -> CheckResult:
        source = context.inputs.get(self.input_name)
        if source is None:
            return CheckResult(self.name, False, f"input {self.input_name} is not available")
        expected = set(pc.unique(source[self.column]).to_pylist())
        got = table[self.column].to_pylist()
        missing, extra = expected - set(got), set(got) - expected
        if missing or extra or len(got) != len(set(got)):
            detail = (
                f"{len(got)} rows for {len(expected)} input keys; missing {_samples(sorted(missing, key=str))}; "
                f"extra {_samples(sorted(extra, key=str))}"
            )
            return CheckResult(self.name, False, detail, len(missing) + len(extra))
        return CheckResult(self.name, True, f"one row for each of the {len(expected)} input keys")


def run_checks(checks: Sequence[Check], table: pa.Table, context: CheckContext) -> list[CheckResult]:
    """Every check's result (all run, so a failure report names every problem, not only the first)."""
    return [check.evaluate(table, context) for check in checks]
