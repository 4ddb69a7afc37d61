"""The piece prefetcher: items in order, the source's exception at its place, and a worker that stops with the block."""

from __future__ import annotations

import threading

import pytest

from transformer.readers import Prefetched


def test_items_arrive_in_order_and_the_worker_is_gone_after_the_block():
    with Prefetched(iter(range(100)), depth=2) as items:
        assert list(items) == list(range(100))
    assert not any(t.name == "piece-prefetch" for t in threading.enumerate())


def test_the_sources_exception_is_raised_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise ValueError("truncated piece")

    seen = []
    with pytest.raises(ValueError, match="truncated piece"), Prefetched(source()) as items:
        for item in items:
            seen.append(item)
    assert seen == [1, 2]


def test_leaving_early_stops_the_worker_before_it_reads_everything():
    read = []

    def source():
        for i in range(1000):
            read.append(i)
            yield i

    with pytest.raises(RuntimeError), Prefetched(source(), depth=2) as items:
        for item in items:
            if item == 3:
                raise RuntimeError("the consumer failed")
    assert len(read) < 10  # the worker stopped a few items ahead, it did not drain the stream
    assert not any(t.name == "piece-prefetch" for t in threading.enumerate())
