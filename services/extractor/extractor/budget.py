"""The invocation's time budget, taken from the Lambda context (a light module: no HTTP imports)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from extractor.errors import TimeBudgetExceeded


@dataclass(frozen=True)
class Budget:
    """A deadline on the monotonic clock."""

    deadline: float

    @classmethod
    def seconds(cls, seconds: float) -> Budget:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self, doing: str) -> None:
        if self.remaining() <= 0:
            raise TimeBudgetExceeded(f"time budget exhausted while {doing}")


_BUDGET: ContextVar[Budget | None] = ContextVar("extractor_time_budget", default=None)


def current_budget() -> Budget | None:
    return _BUDGET.get()


@contextmanager
def time_budget(remaining_ms: int, reserve_seconds: float = 15.0) -> Iterator[Budget]:
    """Bound every source call of an invocation by the Lambda's remaining time, keeping a reserve to land, write
    state and answer."""
    budget = Budget.seconds(max(0.0, remaining_ms / 1000 - reserve_seconds))
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)
