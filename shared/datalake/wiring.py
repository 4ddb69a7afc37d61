"""The composition root of a handler: its service, built from the adapters once per container, on first use.

A handler module holds one ``Composed`` (``service = Composed(lambda: build_service(settings))``) and calls it for
the service. A test hands the handler a service composed of fakes with ``use``, for the duration of a block, so
nothing in the module is patched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class Composed(Generic[T]):
    """A lazily built, cached service, which a test can replace for a block.

    Parameters
    ----------
    build: composes the service from its adapters (called once, on first use: not at import, not at cold start).
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None

    def __call__(self) -> T:
        if self._value is None:
            self._value = self._build()
        return self._value

    @contextmanager
    def use(self, value: T) -> Iterator[T]:
        """Serve ``value`` instead, until the block ends; the service composed before (if any) is kept."""
        previous, self._value = self._value, value
        try:
            yield value
        finally:
            self._value = previous

    def reset(self) -> None:
        """Forget the composed service: the next call composes it again (the settings or endpoint changed)."""
        self._value = None
