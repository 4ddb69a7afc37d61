"""The pure parts of paging across invocations: when to hand over, the checkpoint's state, the id ledger's segments."""

from __future__ import annotations

import pytest

from extractor.paging import HANDOVER_RESERVE_SECONDS, LandedPage, PagingState, hand_over_now, paging_token
from extractor.proof import IdLedger


def test_an_invocation_always_pages_once_then_stops_before_the_time_runs_out():
    assert not hand_over_now(remaining_seconds=1.0, slowest_page_seconds=30.0, pages_this_invocation=0)
    assert not hand_over_now(remaining_seconds=200.0, slowest_page_seconds=10.0, pages_this_invocation=5)
    # the next page (twice the slowest so far) and the handover no longer fit
    assert hand_over_now(HANDOVER_RESERVE_SECONDS + 19.9, slowest_page_seconds=10.0, pages_this_invocation=5)
    assert not hand_over_now(HANDOVER_RESERVE_SECONDS + 20.1, slowest_page_seconds=10.0, pages_this_invocation=5)
    # a page cap hands over whatever the time left
    assert hand_over_now(1000.0, slowest_page_seconds=0.1, pages_this_invocation=2, max_pages=2)


def test_the_landing_folder_is_named_by_run_and_dataset_not_by_content():
    assert paging_token("20261121T080000Z-0a1b2c3d", "abcd-0001") == paging_token(
        "20261121T080000Z-0a1b2c3d", "abcd-0001"
    )
    assert paging_token("20261121T080000Z-0a1b2c3d", "abcd-0001") != paging_token(
        "20261122T080000Z-0a1b2c3d", "abcd-0001"
    )


def test_a_paging_state_round_trips_and_refuses_pages_that_do_not_add_up():
    page = LandedPage("landing/x/part-00000.json", "a" * 64, 100, 5, "v1", "http://source")
    state = PagingState(token="t" * 12, fetched_at="2026-11-21T08:00:03+00:00", page_size=5, count_before=23)
    state.pages, state.rows = [page], 5
    assert PagingState.from_json(state.to_json()) == state
    broken = {**state.to_json(), "rows": 6}
    with pytest.raises(ValueError, match="counts 6 rows but its pages hold 5"):
        PagingState.from_json(broken)


def test_ids_are_unique_across_every_segment_of_the_ledger():
    # GIVEN two invocations' segments, the second repeating one id of the first
    first = IdLedger()
    for i in range(1000):
        first.add(f"row-{i}")
    segment_one = first.unsaved_segment()
    first.add("row-1000")
    first.add("row-7")  # a page repeated across the handover
    segment_two = first.unsaved_segment()
    assert first.unsaved_segment() == IdLedger().unsaved_segment()  # nothing left unsaved

    # WHEN a third invocation loads both segments
    resumed = IdLedger()
    resumed.load_segment(segment_one)
    resumed.load_segment(segment_two)

    # THEN it holds every id, and finds the one that came twice
    assert resumed.count == 1002
    assert resumed.duplicates() == 1
    with pytest.raises(ValueError, match="not whole"):
        IdLedger().load_segment(segment_one[:-3])
