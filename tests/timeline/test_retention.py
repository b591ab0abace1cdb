"""Retention (issue 2 §3 point 8): a TTL per timeline kind, with the clock
injected. Expired entries are no longer returned, ``purge_expired`` deletes
them, and ``oldest_seq`` tells a reader what it missed."""

from __future__ import annotations

import asyncio

import pytest
from timeline_harness import DAY, FakeClock, StoreFactory

from tidings.timeline import Append, Store

RETENTION = {"inbox": 30 * DAY}


@pytest.fixture
async def aging(store_factory: StoreFactory, clock: FakeClock) -> Store:
    """Inboxes keep 30 days, everything else forever. ``inbox:a`` gets seqs 1..3
    on day 0 and 4..5 on day 10; ``dm:a:b`` gets seq 1 on day 0."""
    store = await store_factory(retention=RETENTION)
    await store.append_many([Append("inbox:a", {"n": n}) for n in (1, 2, 3)])
    await store.append("dm:a:b", {"n": 1})
    clock.advance(10 * DAY)
    await store.append_many([Append("inbox:a", {"n": n}) for n in (4, 5)])
    return store


async def test_entries_within_their_ttl_are_returned(aging: Store, clock: FakeClock) -> None:
    clock.advance(20 * DAY - 1)  # day 30 minus a second: nothing has expired
    assert [e.seq for e in (await aging.scan("inbox:a")).entries] == [1, 2, 3, 4, 5]
    assert await aging.oldest_seq("inbox:a") == 1


async def test_expired_entries_are_not_returned(aging: Store, clock: FakeClock) -> None:
    clock.advance(25 * DAY)  # day 35: day-0 entries are past 30 days
    assert await aging.get("inbox:a", 1) is None
    assert await aging.get("inbox:a", 3) is None
    assert (await aging.get("inbox:a", 4)) is not None
    assert [e.seq for e in (await aging.scan("inbox:a")).entries] == [4, 5]
    backward = await aging.scan("inbox:a", direction="backward", limit=2)
    assert [e.seq for e in backward.entries] == [5, 4] and backward.has_more is False
    latest = await aging.latest("inbox:a")
    assert latest is not None and latest.seq == 5


async def test_oldest_seq_moves_past_expired_entries(aging: Store, clock: FakeClock) -> None:
    assert await aging.oldest_seq("inbox:a") == 1
    clock.advance(25 * DAY)
    assert await aging.oldest_seq("inbox:a") == 4
    clock.advance(10 * DAY)  # day 45: everything has expired
    assert await aging.oldest_seq("inbox:a") == 6  # last_seq + 1: nothing readable
    assert await aging.latest("inbox:a") is None
    # expiry never moves the head back: the next entry still follows
    assert await aging.last_seq("inbox:a") == 5
    assert (await aging.append("inbox:a", {"n": 6})).seq == 6
    assert await aging.oldest_seq("inbox:a") == 6


async def test_kinds_without_a_ttl_keep_entries_forever(aging: Store, clock: FakeClock) -> None:
    clock.advance(10_000 * DAY)
    assert (await aging.get("dm:a:b", 1)) is not None
    assert await aging.oldest_seq("dm:a:b") == 1
    assert await aging.purge_expired() == 5  # all of inbox:a, none of dm:a:b
    assert [e.seq for e in (await aging.scan("dm:a:b")).entries] == [1]


async def test_purge_deletes_expired_entries(
    aging: Store, store_factory: StoreFactory, clock: FakeClock
) -> None:
    clock.advance(25 * DAY)
    assert await aging.purge_expired() == 3
    assert await aging.purge_expired() == 0  # nothing left to purge
    assert await aging.oldest_seq("inbox:a") == 4
    # a store without the TTL sees what is really on disk: the entries are gone
    forever = await store_factory()
    assert [e.seq for e in (await forever.scan("inbox:a")).entries] == [4, 5]
    assert await forever.oldest_seq("inbox:a") == 4
    assert await forever.last_seq("inbox:a") == 5


async def test_oldest_seq_without_a_ttl(store: Store) -> None:
    assert await store.oldest_seq("dm:none") == 1  # nothing written: 0 + 1
    for n in range(4):
        await store.append("dm:a:b", {"n": n})
    await store.delete("dm:a:b", 1)
    await store.delete("dm:a:b", 2)
    assert await store.oldest_seq("dm:a:b") == 3


async def test_purge_covers_many_timelines_and_only_its_kind(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    """More timelines than one purge slice (200), and look-alike kinds untouched."""
    store = await store_factory(retention=RETENTION)
    inboxes = [f"inbox:user{n:04}" for n in range(450)]
    message = {"text": "fan-out"}
    await store.append_many(
        [Append(t, message) for t in inboxes]
        + [Append("inboxes:x", message), Append("inbox2:x", message), Append("dm:a:b", message)]
    )
    clock.advance(31 * DAY)
    assert await store.purge_expired() == len(inboxes)
    heads = await store.heads(inboxes)
    assert set(heads.values()) == {1}  # heads survive the purge
    for timeline_id in inboxes[::50]:
        assert await store.oldest_seq(timeline_id) == 2
    for timeline_id in ("inboxes:x", "inbox2:x", "dm:a:b"):
        assert await store.get(timeline_id, 1) is not None


async def test_background_purge_runs_on_its_own(
    store_factory: StoreFactory, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await store_factory(retention=RETENTION, purge_interval=0.001)
    await store.append("inbox:a", {"n": 1})
    clock.advance(31 * DAY)
    purged: asyncio.Queue[int] = asyncio.Queue()
    purge = store.purge_expired

    async def observed_purge() -> int:
        deleted = await purge()
        purged.put_nowait(deleted)
        return deleted

    monkeypatch.setattr(store, "purge_expired", observed_purge)
    # waits for an event, not for a time: the purger fires every millisecond
    assert await asyncio.wait_for(purged.get(), timeout=30) == 1
    forever = await store_factory()
    assert await forever.get("inbox:a", 1) is None
