"""Sequence numbers (issue 2 §3 points 1, 2 and 6).

1. The first append gets seq 1, each next one the next integer; timelines are
   independent.
2. Concurrent appenders get exactly 1..N, with one store or two on one database.
6. A seq is never reused, even after the newest entry is deleted.
"""

from __future__ import annotations

import asyncio

from timeline_harness import CLOCK_START, FakeClock, StoreFactory

from tidings.timeline import Append, Entry, Store

APPENDERS = 200


# -- point 1 --------------------------------------------------------------------


async def test_first_append_gets_seq_1(store: Store) -> None:
    entry = await store.append("dm:a:b", {"text": "hi"})
    assert entry == Entry("dm:a:b", 1, {"text": "hi"}, CLOCK_START, None)


async def test_each_next_append_gets_the_next_integer(store: Store) -> None:
    seqs = [(await store.append("dm:a:b", {"n": n})).seq for n in range(1, 11)]
    assert seqs == list(range(1, 11))
    assert await store.last_seq("dm:a:b") == 10


async def test_a_later_seq_is_never_stamped_earlier(store: Store, clock: FakeClock) -> None:
    """Time runs forward within a timeline even when the clock steps back (or
    another writer that stamped later committed first): a later seq takes the
    time of the one before it. Other timelines keep the clock's reading."""
    clock.advance(10)
    first = await store.append("dm:a:b", {"n": 1})
    clock.advance(-5)
    second = await store.append("dm:a:b", {"n": 2})
    other = await store.append("dm:a:c", {"n": 1})
    assert second.created_at == first.created_at == CLOCK_START + 10
    assert other.created_at == CLOCK_START + 5
    assert (await store.get("dm:a:b", 2)) == second
    # Appends queued together (one commit) as well.
    clock.advance(-1)
    written = await asyncio.gather(
        *(
            store.append_many([Append("dm:a:b", {"n": n}), Append("dm:a:d", {"n": n})])
            for n in (3, 4)
        )
    )
    stamps = [batch.entries[0].created_at for batch in written]
    assert stamps == [CLOCK_START + 10] * 2
    assert [batch.entries[1].created_at for batch in written] == [CLOCK_START + 4] * 2
    page = await store.scan("dm:a:b")
    times = [entry.created_at for entry in page.entries]
    assert times == sorted(times)


async def test_appended_entry_reads_back_as_committed(store: Store, clock: FakeClock) -> None:
    clock.advance(12.5)
    written = await store.append("dm:a:b", {"text": "hi", "nested": {"k": [1, 2]}}, client_id="c1")
    assert written.created_at == CLOCK_START + 12.5
    assert await store.get("dm:a:b", 1) == written


async def test_timelines_have_independent_sequences(store: Store) -> None:
    assert (await store.append("dm:a:b", {"n": 1})).seq == 1
    assert (await store.append("dm:a:b", {"n": 2})).seq == 2
    assert (await store.append("dm:a:c", {"n": 1})).seq == 1
    assert (await store.append("inbox:a", {"n": 1})).seq == 1
    assert (await store.append("dm:a:b", {"n": 3})).seq == 3
    assert (await store.append("dm:a:c", {"n": 2})).seq == 2
    assert await store.heads(["dm:a:b", "dm:a:c", "inbox:a", "inbox:z"]) == {
        "dm:a:b": 3,
        "dm:a:c": 2,
        "inbox:a": 1,
        "inbox:z": 0,
    }


async def test_last_seq_of_a_timeline_never_written_is_0(store: Store) -> None:
    assert await store.last_seq("dm:nobody") == 0
    assert await store.latest("dm:nobody") is None


async def test_append_many_gives_consecutive_seqs_in_item_order(store: Store) -> None:
    await store.append("group:g", {"n": 0})
    batch = await store.append_many(
        [
            Append("group:g", {"n": 1}),
            Append("inbox:a", {"n": 1}),
            Append("group:g", {"n": 2}),
            Append("group:g", {"n": 3}),
        ]
    )
    assert not batch.replayed
    assert [(e.timeline_id, e.seq, e.message) for e in batch.entries] == [
        ("group:g", 2, {"n": 1}),
        ("inbox:a", 1, {"n": 1}),
        ("group:g", 3, {"n": 2}),
        ("group:g", 4, {"n": 3}),
    ]


# -- point 2 --------------------------------------------------------------------


async def _all_seqs(store: Store, timeline_id: str) -> list[tuple[int, int]]:
    """(seq, message["n"]) of every entry, read in pages."""
    seen: list[tuple[int, int]] = []
    after = 0
    while True:
        page = await store.scan(timeline_id, after=after, limit=64)
        seen += [(e.seq, e.message["n"]) for e in page.entries]
        if not page.has_more:
            return seen
        after = page.entries[-1].seq


def _assert_exactly_1_to_n(entries: list[Entry], stored: list[tuple[int, int]], n: int) -> None:
    assert sorted(e.seq for e in entries) == list(range(1, n + 1))
    # every acked entry is stored at the seq it was acked with
    assert sorted((e.seq, e.message["n"]) for e in entries) == stored
    assert sorted(e.message["n"] for e in entries) == list(range(n))


async def test_200_concurrent_appenders_get_exactly_1_to_200(store: Store) -> None:
    entries = await asyncio.gather(
        *(store.append("group:busy", {"n": n}) for n in range(APPENDERS))
    )
    stored = await _all_seqs(store, "group:busy")
    _assert_exactly_1_to_n(list(entries), stored, APPENDERS)
    assert await store.last_seq("group:busy") == APPENDERS


async def test_200_concurrent_appenders_on_two_stores_get_exactly_1_to_200(
    store_factory: StoreFactory,
) -> None:
    first = await store_factory()
    second = await store_factory()
    entries = await asyncio.gather(
        *((first if n % 2 else second).append("group:busy", {"n": n}) for n in range(APPENDERS))
    )
    _assert_exactly_1_to_n(list(entries), await _all_seqs(first, "group:busy"), APPENDERS)
    assert await second.last_seq("group:busy") == APPENDERS


async def test_concurrent_fan_outs_over_shared_timelines_in_any_order(
    store_factory: StoreFactory,
) -> None:
    """Batches that touch the same timelines in opposite orders all commit (no
    deadlock), and each timeline still gets exactly 1..N."""
    first = await store_factory()
    second = await store_factory()
    timelines = ["group:g", "inbox:a", "inbox:b", "inbox:c"]

    async def fan_out(n: int) -> tuple[Entry, ...]:
        order = timelines if n % 2 else timelines[::-1]
        message = {"n": n}
        batch = await (first if n % 4 < 2 else second).append_many(
            [Append(t, message) for t in order]
        )
        return batch.entries

    batches = await asyncio.gather(*(fan_out(n) for n in range(100)))
    for timeline_id in timelines:
        mine = [e for entries in batches for e in entries if e.timeline_id == timeline_id]
        _assert_exactly_1_to_n(mine, await _all_seqs(first, timeline_id), 100)


# -- point 6 --------------------------------------------------------------------


async def test_seq_not_reused_after_deleting_the_newest(store: Store) -> None:
    for n in range(3):
        await store.append("dm:a:b", {"n": n})
    await store.delete("dm:a:b", 3)
    assert (await store.append("dm:a:b", {"n": 3})).seq == 4
    assert [e.seq for e in (await store.scan("dm:a:b")).entries] == [1, 2, 4]


async def test_seq_not_reused_after_deleting_everything_and_restarting(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory()
    for n in range(5):
        await store.append("dm:a:b", {"n": n})
    for seq in range(1, 6):
        await store.delete("dm:a:b", seq)
    assert await store.last_seq("dm:a:b") == 5
    store = await store_factory.reopen(store)
    assert await store.last_seq("dm:a:b") == 5
    assert (await store.append("dm:a:b", {"n": 5})).seq == 6
    assert [e.seq for e in (await store.scan("dm:a:b")).entries] == [6]
