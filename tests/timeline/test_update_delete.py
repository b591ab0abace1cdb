"""``update`` (partial merge) and ``delete``, including entries that share one
message because they were fanned out by one ``append_many``: changing or
removing one copy never changes the others."""

from __future__ import annotations

import pytest
from timeline_harness import FakeClock, StoreFactory

from tidings.errors import Conflict, NotFound
from tidings.timeline import Append, Store

FAN_OUT = ["dm:a:b", "inbox:a", "inbox:b", "inbox:c"]


async def test_update_merges_top_level_fields(store: Store, clock: FakeClock) -> None:
    original = await store.append(
        "dm:a:b", {"text": "hi", "meta": {"lang": "en"}, "n": 1}, client_id="c1"
    )
    clock.advance(100)
    updated = await store.update("dm:a:b", 1, {"text": "hello", "edited": True, "meta": {}})
    assert updated.message == {"text": "hello", "meta": {}, "n": 1, "edited": True}
    # same entry: seq, created_at and client id are kept
    assert (updated.seq, updated.created_at, updated.client_id) == (1, original.created_at, "c1")
    assert await store.get("dm:a:b", 1) == updated


async def test_update_with_none_stores_json_null(store: Store) -> None:
    await store.append("dm:a:b", {"text": "hi", "reaction": "+1"})
    updated = await store.update("dm:a:b", 1, {"reaction": None})
    assert updated.message == {"text": "hi", "reaction": None}


async def test_update_is_durable(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.append("dm:a:b", {"text": "hi"})
    await store.update("dm:a:b", 1, {"text": "edited"})
    store = await store_factory.reopen(store)
    entry = await store.get("dm:a:b", 1)
    assert entry is not None and entry.message == {"text": "edited"}


async def test_update_of_an_absent_entry_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound) as raised:
        await store.update("dm:a:b", 1, {"text": "x"})
    assert raised.value.code == "not_found" and raised.value.status == 404
    await store.append("dm:a:b", {"text": "hi"})
    with pytest.raises(NotFound):
        await store.update("dm:a:b", 2, {"text": "x"})
    await store.delete("dm:a:b", 1)
    with pytest.raises(NotFound):
        await store.update("dm:a:b", 1, {"text": "x"})
    assert await store.last_seq("dm:a:b") == 1  # a failed update appends nothing


async def test_update_keeps_the_ref(store: Store) -> None:
    message = {"text": "hi"}
    await store.append_many([Append("dm:a:b", message), Append("inbox:a", message, ref=0)])
    updated = await store.update("inbox:a", 1, {"read": True})
    assert updated.ref == ("dm:a:b", 1)
    assert await store.get("inbox:a", 1) == updated


async def test_delete_removes_only_that_entry(store: Store) -> None:
    for n in range(3):
        await store.append("dm:a:b", {"n": n})
    await store.delete("dm:a:b", 2)
    assert await store.get("dm:a:b", 2) is None
    assert [e.seq for e in (await store.scan("dm:a:b")).entries] == [1, 3]


async def test_delete_of_an_absent_entry_is_not_an_error(store: Store) -> None:
    await store.delete("dm:never", 1)
    await store.append("dm:a:b", {"n": 1})
    await store.delete("dm:a:b", 5)
    await store.delete("dm:a:b", 1)
    await store.delete("dm:a:b", 1)
    assert await store.last_seq("dm:a:b") == 1


# -- entries sharing one message ---------------------------------------------------


async def _fan_out(store: Store) -> None:
    shared = {"text": "to all", "n": 1}
    await store.append_many([Append(t, shared) for t in FAN_OUT])


async def _messages(store: Store) -> dict[str, object]:
    found = {}
    for timeline_id in FAN_OUT:
        entry = await store.get(timeline_id, 1)
        found[timeline_id] = None if entry is None else entry.message
    return found


async def test_updating_one_fanned_out_copy_leaves_the_others(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory()
    await _fan_out(store)
    await store.update("inbox:b", 1, {"read": True})
    await store.update("dm:a:b", 1, {"text": "edited"})
    expected = {
        "dm:a:b": {"text": "edited", "n": 1},
        "inbox:a": {"text": "to all", "n": 1},
        "inbox:b": {"text": "to all", "n": 1, "read": True},
        "inbox:c": {"text": "to all", "n": 1},
    }
    assert await _messages(store) == expected
    store = await store_factory.reopen(store)
    assert await _messages(store) == expected


async def test_every_copy_can_be_updated_in_turn(store: Store) -> None:
    await _fan_out(store)
    for n, timeline_id in enumerate(FAN_OUT):
        await store.update(timeline_id, 1, {"n": 10 + n})
    assert await _messages(store) == {
        timeline_id: {"text": "to all", "n": 10 + n} for n, timeline_id in enumerate(FAN_OUT)
    }


async def test_deleting_fanned_out_copies_leaves_the_others(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await _fan_out(store)
    await store.delete("dm:a:b", 1)
    await store.delete("inbox:c", 1)
    store = await store_factory.reopen(store)
    assert await _messages(store) == {
        "dm:a:b": None,
        "inbox:a": {"text": "to all", "n": 1},
        "inbox:b": {"text": "to all", "n": 1},
        "inbox:c": None,
    }
    # the last copies are still independent of each other
    await store.update("inbox:a", 1, {"n": 2})
    entry = await store.get("inbox:b", 1)
    assert entry is not None and entry.message == {"text": "to all", "n": 1}


async def test_purging_fanned_out_copies_leaves_the_others(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    store = await store_factory(retention={"inbox": 10.0})
    await _fan_out(store)
    clock.advance(11)
    assert await store.purge_expired() == 3
    entry = await store.get("dm:a:b", 1)
    assert entry is not None and entry.message == {"text": "to all", "n": 1}


async def test_equal_messages_appended_separately_stay_separate(store: Store) -> None:
    await store.append("dm:a:b", {"text": "ok"})
    await store.append("dm:a:c", {"text": "ok"})
    await store.update("dm:a:b", 1, {"text": "changed"})
    entry = await store.get("dm:a:c", 1)
    assert entry is not None and entry.message == {"text": "ok"}


async def test_a_failing_check_on_the_merged_message_cancels_the_update(store: Store) -> None:
    await store.append("t:x", {"text": "hi", "locked": True})

    def refuse_locked(message: dict[str, object]) -> None:
        if message.get("locked"):
            raise Conflict("locked")

    with pytest.raises(Conflict):
        await store.update("t:x", 1, {"text": "changed"}, check=refuse_locked)
    entry = await store.get("t:x", 1)
    assert entry is not None and entry.message == {"text": "hi", "locked": True}
    updated = await store.update("t:x", 1, {"locked": False, "text": "ok"}, check=refuse_locked)
    assert updated.message == {"text": "ok", "locked": False}
