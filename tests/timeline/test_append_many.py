"""``append_many`` is one atomic commit (issue 2 §3 point 4), and its items may
point at an earlier item of the batch (``Append.ref``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from timeline_harness import StoreFactory

from tidings.errors import InvalidInput, TooLarge
from tidings.timeline import Append, Entry, Store

TIMELINES = ["dm:a:b", "inbox:a", "inbox:b"]


async def _seed(store: Store) -> dict[str, int]:
    """One entry in each timeline, so that a leak would show as a moved head."""
    for timeline_id in TIMELINES:
        await store.append(timeline_id, {"seed": True})
    return await store.heads(TIMELINES)


async def _assert_untouched(store: Store, heads: dict[str, int]) -> None:
    assert await store.heads(TIMELINES) == heads
    for timeline_id in TIMELINES:
        page = await store.scan(timeline_id)
        assert [e.message for e in page.entries] == [{"seed": True}]
    # no seq was consumed either: the next entry follows the seed
    assert (await store.append("inbox:a", {"n": 1})).seq == heads["inbox:a"] + 1


def _fan_out(bad: Append) -> list[Append]:
    message = {"text": "hi"}
    return [Append("dm:a:b", message), Append("inbox:a", message, ref=0), bad]


BAD_ITEMS: dict[str, tuple[Append, type[Exception]]] = {
    "message not an object": (Append("inbox:b", ["not", "an", "object"]), InvalidInput),  # type: ignore[arg-type]
    "message not JSON": (Append("inbox:b", {"when": {1, 2}}), InvalidInput),
    "message too large": (Append("inbox:b", {"text": "x" * 70_000}), TooLarge),
    "empty timeline id": (Append("", {"text": "hi"}), InvalidInput),
    "timeline id too long": (Append("inbox:" + "b" * 300, {"text": "hi"}), InvalidInput),
    "empty client id": (Append("inbox:b", {"text": "hi"}, ""), InvalidInput),
    "ref to a later item": (Append("inbox:b", {"text": "hi"}, ref=5), InvalidInput),
    "ref to itself": (Append("inbox:b", {"text": "hi"}, ref=2), InvalidInput),
}


@pytest.mark.parametrize("case", list(BAD_ITEMS))
async def test_one_invalid_item_rejects_the_whole_batch(store: Store, case: str) -> None:
    heads = await _seed(store)
    bad, error = BAD_ITEMS[case]
    with pytest.raises(error):
        await store.append_many(_fan_out(bad))
    await _assert_untouched(store, heads)


async def test_batch_failing_inside_the_backend_leaves_nothing(store: Store) -> None:
    """The duplicate is only found while writing, after the first items were
    inserted: the backend must roll those back."""
    heads = await _seed(store)
    message = {"text": "hi"}
    with pytest.raises(InvalidInput):
        await store.append_many(
            [
                Append("dm:a:b", message),
                Append("inbox:a", message, "c"),
                Append("inbox:b", message),
                Append("inbox:a", message, "c"),
            ]
        )
    await _assert_untouched(store, heads)


async def test_failed_batch_does_not_disturb_concurrent_writers(store: Store) -> None:
    bad = Append("inbox:b", {"n": 1}, "dup")
    results = await asyncio.gather(
        store.append("dm:a:b", {"n": 1}),
        store.append_many([Append("inbox:a", {"n": 1}), bad, bad]),
        store.append("inbox:a", {"n": 2}),
        return_exceptions=True,
    )
    assert isinstance(results[0], Entry) and isinstance(results[2], Entry)
    assert isinstance(results[1], InvalidInput)
    assert await store.heads(TIMELINES) == {"dm:a:b": 1, "inbox:a": 1, "inbox:b": 0}


async def test_empty_batch_is_invalid(store: Store) -> None:
    with pytest.raises(InvalidInput):
        await store.append_many([])


async def test_fan_out_is_visible_everywhere_after_the_commit(store_factory: StoreFactory) -> None:
    writer = await store_factory()
    reader = await store_factory()
    message = {"text": "to everyone"}
    batch = await writer.append_many([Append(t, message) for t in TIMELINES])
    for entry in batch.entries:
        assert await reader.get(entry.timeline_id, entry.seq) == entry


# -- Append.ref ----------------------------------------------------------------------


async def test_ref_records_the_referenced_items_timeline_and_seq(store: Store) -> None:
    for _ in range(4):
        await store.append("dm:a:b", {"older": True})
    message: dict[str, Any] = {"text": "hi"}
    batch = await store.append_many(
        [
            Append("inbox:a", {"notice": True}),
            Append("dm:a:b", message),
            Append("inbox:a", message, ref=1),
            Append("inbox:b", message, ref=1),
            Append("inbox:b", message),
        ]
    )
    assert [e.ref for e in batch.entries] == [None, None, ("dm:a:b", 5), ("dm:a:b", 5), None]
    for entry in batch.entries:
        assert await store.get(entry.timeline_id, entry.seq) == entry
    page = await store.scan("inbox:a", direction="backward", limit=1)
    assert page.entries[0].ref == ("dm:a:b", 5)


async def test_ref_to_an_item_of_the_same_timeline(store: Store) -> None:
    batch = await store.append_many([Append("dm:a:b", {"n": 1}), Append("dm:a:b", {"n": 2}, ref=0)])
    assert batch.entries[1].ref == ("dm:a:b", 1)


@pytest.mark.parametrize("ref", [-1, True, "0"])
async def test_ref_must_be_the_index_of_an_earlier_item(store: Store, ref: Any) -> None:
    with pytest.raises(InvalidInput):
        await store.append_many([Append("dm:a:b", {"n": 1}), Append("inbox:a", {"n": 1}, ref=ref)])
    assert await store.heads(["dm:a:b", "inbox:a"]) == {"dm:a:b": 0, "inbox:a": 0}
