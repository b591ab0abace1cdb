"""Scans, newest-N and paging (issue 2 §3 point 5), plus ``latest`` and ``heads``.

Bounds: ``after`` and ``before`` are both exclusive.
"""

from __future__ import annotations

from typing import Any

import pytest

from tidings.errors import InvalidInput
from tidings.timeline import MAX_SCAN_LIMIT, Append, Direction, Store

N = 57  # not a multiple of any page size used below: the last page is partial


@pytest.fixture
async def filled(store: Store) -> Store:
    """``t:1`` holds seqs 1..N with message {"n": seq}; ``t:2`` one entry."""
    items = [Append("t:1", {"n": n}) for n in range(1, N + 1)] + [Append("t:2", {"n": 1})]
    await store.append_many(items)
    return store


def seqs(page: Any) -> list[int]:
    return [e.seq for e in page.entries]


async def test_forward_from_after_k_returns_seqs_above_k_ascending(filled: Store) -> None:
    page = await filled.scan("t:1", after=40)
    assert seqs(page) == list(range(41, N + 1))
    assert [e.message["n"] for e in page.entries] == list(range(41, N + 1))
    assert page.has_more is False


async def test_forward_without_bounds_starts_at_the_oldest(filled: Store) -> None:
    page = await filled.scan("t:1", limit=5)
    assert seqs(page) == [1, 2, 3, 4, 5]
    assert page.has_more is True


async def test_backward_limit_20_returns_the_newest_20_descending(filled: Store) -> None:
    page = await filled.scan("t:1", limit=20, direction=Direction.BACKWARD)
    assert seqs(page) == list(range(N, N - 20, -1))
    assert page.has_more is True


async def test_direction_may_be_given_as_a_string(filled: Store) -> None:
    page = await filled.scan("t:1", limit=3, direction="backward")
    assert seqs(page) == [N, N - 1, N - 2]


async def test_both_bounds_are_exclusive(filled: Store) -> None:
    assert seqs(await filled.scan("t:1", after=10, before=15)) == [11, 12, 13, 14]
    backward = await filled.scan("t:1", after=10, before=15, direction="backward")
    assert seqs(backward) == [14, 13, 12, 11]
    assert seqs(await filled.scan("t:1", after=10, before=12)) == [11]
    assert seqs(await filled.scan("t:1", after=10, before=11)) == []
    assert seqs(await filled.scan("t:1", before=3)) == [1, 2]
    assert seqs(await filled.scan("t:1", after=0, limit=2)) == [1, 2]


@pytest.mark.parametrize("limit", [1, 7, 20, 100])
async def test_paging_forward_visits_every_entry_exactly_once(filled: Store, limit: int) -> None:
    visited: list[int] = []
    after = 0
    while True:
        page = await filled.scan("t:1", after=after, limit=limit)
        assert len(page.entries) <= limit
        visited += seqs(page)
        if not page.has_more:
            break
        assert page.last_seq is not None
        after = page.last_seq
    assert visited == list(range(1, N + 1))


@pytest.mark.parametrize("limit", [1, 7, 20, 100])
async def test_paging_backward_visits_every_entry_exactly_once(filled: Store, limit: int) -> None:
    visited: list[int] = []
    before: int | None = None
    while True:
        page = await filled.scan("t:1", before=before, limit=limit, direction="backward")
        visited += seqs(page)
        if not page.has_more:
            break
        before = page.last_seq
    assert visited == list(range(N, 0, -1))


async def test_paging_skips_deleted_entries_and_still_sees_everything_else(filled: Store) -> None:
    for seq in (1, 2, 20, 21, 22, N):
        await filled.delete("t:1", seq)
    expected = [s for s in range(1, N + 1) if s not in (1, 2, 20, 21, 22, N)]
    visited: list[int] = []
    after = 0
    while True:
        page = await filled.scan("t:1", after=after, limit=10)
        visited += seqs(page)
        if not page.has_more:
            break
        after = page.entries[-1].seq
    assert visited == expected


async def test_limit_caps_the_page_and_has_more_tells_the_rest(filled: Store) -> None:
    page = await filled.scan("t:1", after=N - 5, limit=5)
    assert seqs(page) == [N - 4, N - 3, N - 2, N - 1, N]
    assert page.has_more is False  # exactly the rest: nothing remains
    page = await filled.scan("t:1", after=N - 6, limit=5)
    assert len(page.entries) == 5 and page.has_more is True


async def test_the_largest_limit_is_accepted(filled: Store) -> None:
    page = await filled.scan("t:1", limit=MAX_SCAN_LIMIT)
    assert seqs(page) == list(range(1, N + 1))


async def test_scans_of_an_empty_range_or_timeline(filled: Store) -> None:
    empty = await filled.scan("t:none")
    assert empty.entries == () and empty.has_more is False and empty.last_seq is None
    assert seqs(await filled.scan("t:1", after=N)) == []
    assert seqs(await filled.scan("t:1", after=N + 100)) == []
    assert seqs(await filled.scan("t:1", before=1, direction="backward")) == []


async def test_scan_reads_only_its_timeline(filled: Store) -> None:
    page = await filled.scan("t:2")
    assert [(e.timeline_id, e.seq) for e in page.entries] == [("t:2", 1)]
    assert {e.timeline_id for e in (await filled.scan("t:1", limit=100)).entries} == {"t:1"}


BAD_SCANS: dict[str, dict[str, Any]] = {
    "negative after": {"after": -1},
    "zero before": {"before": 0},
    "after equals before": {"after": 5, "before": 5},
    "after above before": {"after": 9, "before": 5},
    "string after": {"after": "3"},
    "float before": {"before": 3.0},
    "bool after": {"after": True},
    "zero limit": {"limit": 0},
    "limit over the cap": {"limit": MAX_SCAN_LIMIT + 1},
    "bool limit": {"limit": True},
    "float limit": {"limit": 2.5},
    "unknown direction": {"direction": "sideways"},
}


@pytest.mark.parametrize("case", list(BAD_SCANS))
async def test_bad_bounds_raise_invalid_input(filled: Store, case: str) -> None:
    with pytest.raises(InvalidInput):
        await filled.scan("t:1", **BAD_SCANS[case])


async def test_latest_is_the_newest_readable_entry(filled: Store) -> None:
    latest = await filled.latest("t:1")
    assert latest is not None and latest.seq == N and latest.message == {"n": N}
    await filled.delete("t:1", N)
    latest = await filled.latest("t:1")
    assert latest is not None and latest.seq == N - 1
    assert await filled.last_seq("t:1") == N  # the head does not move back


async def test_heads_reads_many_timelines_at_once(filled: Store) -> None:
    assert await filled.heads([]) == {}
    assert await filled.heads(["t:1", "t:2", "t:1", "t:0"]) == {"t:1": N, "t:2": 1, "t:0": 0}
