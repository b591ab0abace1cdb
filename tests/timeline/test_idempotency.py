"""Client ids make retries idempotent (issue 2 §3 point 3), and the semantics
of ``Batch.replayed`` for ``append_many``."""

from __future__ import annotations

import asyncio

import pytest
from timeline_harness import FakeClock, StoreFactory

from tidings.errors import InvalidInput
from tidings.timeline import Append, Batch, Store


async def test_repeated_client_id_returns_the_original_and_writes_nothing(
    store: Store, clock: FakeClock
) -> None:
    original = await store.append("dm:a:b", {"text": "hi"}, client_id="m-1")
    clock.advance(5)
    retry = await store.append("dm:a:b", {"text": "hi, edited by the retry"}, client_id="m-1")
    assert retry == original
    assert await store.last_seq("dm:a:b") == 1
    assert [e.message for e in (await store.scan("dm:a:b")).entries] == [{"text": "hi"}]


async def test_client_id_dedupe_survives_a_restart(store_factory: StoreFactory) -> None:
    store = await store_factory()
    original = await store.append("dm:a:b", {"text": "hi"}, client_id="m-1")
    await store.append("dm:a:b", {"text": "later"})
    store = await store_factory.reopen(store)
    assert await store.append("dm:a:b", {"text": "hi"}, client_id="m-1") == original
    assert await store.last_seq("dm:a:b") == 2


async def test_client_id_dedupe_is_not_a_time_window(store: Store, clock: FakeClock) -> None:
    original = await store.append("dm:a:b", {"text": "hi"}, client_id="m-1")
    clock.advance(365 * 86_400)
    assert await store.append("dm:a:b", {"text": "hi"}, client_id="m-1") == original


async def test_client_ids_are_scoped_to_their_timeline(store: Store) -> None:
    first = await store.append("dm:a:b", {"n": 1}, client_id="m-1")
    other = await store.append("dm:a:c", {"n": 1}, client_id="m-1")
    assert (first.timeline_id, first.seq) == ("dm:a:b", 1)
    assert (other.timeline_id, other.seq) == ("dm:a:c", 1)


async def test_entries_without_client_id_are_never_deduplicated(store: Store) -> None:
    await store.append("dm:a:b", {"n": 1})
    await store.append("dm:a:b", {"n": 1})
    assert await store.last_seq("dm:a:b") == 2


async def test_concurrent_retries_write_once(store_factory: StoreFactory) -> None:
    first = await store_factory()
    second = await store_factory()
    results = await asyncio.gather(
        *(
            (first if n % 2 else second).append("dm:a:b", {"n": 1}, client_id="m-1")
            for n in range(20)
        )
    )
    assert {(e.seq, e.client_id) for e in results} == {(1, "m-1")}
    assert await first.last_seq("dm:a:b") == 1


# -- append_many and Batch.replayed ------------------------------------------------


def _fan_out(client_id: str = "m-1") -> list[Append]:
    message = {"text": "hello group"}
    return [
        Append("group:g", message, client_id),
        Append("inbox:a", message, client_id),
        Append("inbox:b", message, client_id),
    ]


async def test_a_written_batch_is_not_replayed(store: Store) -> None:
    batch = await store.append_many(_fan_out())
    assert batch.replayed is False
    assert [(e.timeline_id, e.seq, e.client_id) for e in batch.entries] == [
        ("group:g", 1, "m-1"),
        ("inbox:a", 1, "m-1"),
        ("inbox:b", 1, "m-1"),
    ]


async def test_retried_batch_is_replayed_with_the_original_entries(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    store = await store_factory()
    original = await store.append_many(_fan_out())
    clock.advance(60)
    store = await store_factory.reopen(store)
    retry = await store.append_many(_fan_out())
    assert retry == Batch(original.entries, replayed=True)
    assert await store.heads(["group:g", "inbox:a", "inbox:b"]) == {
        "group:g": 1,
        "inbox:a": 1,
        "inbox:b": 1,
    }


async def test_batch_with_one_known_client_id_writes_nothing(store: Store) -> None:
    """A batch is a retry as soon as one of its client ids is present: the items
    that are new are not written either, and only the found originals return."""
    known = await store.append("inbox:b", {"text": "hello group"}, client_id="m-1")
    batch = await store.append_many(
        [
            Append("group:g", {"text": "hello group"}, "m-1"),
            Append("inbox:a", {"text": "new"}, None),
            Append("inbox:b", {"text": "hello group"}, "m-1"),
        ]
    )
    assert batch == Batch((known,), replayed=True)
    assert await store.heads(["group:g", "inbox:a", "inbox:b"]) == {
        "group:g": 0,
        "inbox:a": 0,
        "inbox:b": 1,
    }


async def test_replayed_entries_come_in_item_order(store: Store) -> None:
    first = await store.append("inbox:b", {"n": 2}, client_id="x")
    second = await store.append("inbox:a", {"n": 1}, client_id="x")
    batch = await store.append_many(
        [
            Append("inbox:a", {"n": 1}, "x"),
            Append("inbox:c", {"n": 3}),
            Append("inbox:b", {"n": 2}, "x"),
        ]
    )
    assert batch == Batch((second, first), replayed=True)


async def test_same_client_id_twice_for_one_timeline_in_a_batch_is_rejected(store: Store) -> None:
    with pytest.raises(InvalidInput):
        await store.append_many(
            [
                Append("group:g", {"n": 1}),
                Append("inbox:a", {"n": 1}, "x"),
                Append("inbox:a", {"n": 2}, "x"),
            ]
        )
    assert await store.heads(["group:g", "inbox:a"]) == {"group:g": 0, "inbox:a": 0}
    assert (await store.append("inbox:a", {"n": 3}, client_id="x")).seq == 1
