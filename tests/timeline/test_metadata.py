"""Per-timeline metadata (issue 2 §3 point 10): get / put / update / delete /
find_meta by prefix and field equality, with paging."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from timeline_harness import StoreFactory

from tidings.errors import InvalidInput
from tidings.timeline import Store


async def test_get_absent_is_none(store: Store) -> None:
    assert await store.get_meta("group:none") is None


async def test_put_overwrites_the_whole_record(store: Store) -> None:
    await store.put_meta("group:g", {"name": "Rust", "size": 3, "open": True})
    assert await store.get_meta("group:g") == {"name": "Rust", "size": 3, "open": True}
    await store.put_meta("group:g", {"name": "Rust lang"})
    assert await store.get_meta("group:g") == {"name": "Rust lang"}


async def test_values_round_trip(store: Store) -> None:
    record: dict[str, Any] = {
        "text": '群聊 ✓ "quoted" \\ back',
        "int": 2**53,
        "neg": -7,
        "float": 0.1,
        "bool": False,
        "null": None,
        "list": [1, "two", {"three": 3}],
        "nested": {"a": {"b": []}},
        "": "empty key",
    }
    await store.put_meta("group:g", record)
    assert await store.get_meta("group:g") == record


async def test_update_merges_and_upserts(store: Store) -> None:
    assert await store.update_meta("group:g", {"name": "Rust"}) == {"name": "Rust"}
    merged = await store.update_meta("group:g", {"size": 4, "name": "Rust!"})
    assert merged == {"name": "Rust!", "size": 4}
    assert await store.get_meta("group:g") == merged


async def test_update_with_none_removes_a_key(store: Store) -> None:
    await store.put_meta("group:g", {"name": "Rust", "topic": "borrowck", "size": 4})
    merged = await store.update_meta("group:g", {"topic": None, "missing": None, "size": 5})
    assert merged == {"name": "Rust", "size": 5}
    assert await store.get_meta("group:g") == merged


async def test_update_adds_to_counters_atomically(store: Store) -> None:
    merged = await store.update_meta("group:g", {"name": "Rust"}, add={"members": 2})
    assert merged == {"name": "Rust", "members": 2}
    merged = await store.update_meta("group:g", {"roster": "a1"}, add={"members": -1, "posts": 5})
    assert merged == {"name": "Rust", "members": 1, "roster": "a1", "posts": 5}
    assert await store.get_meta("group:g") == merged


async def test_concurrent_additions_from_two_stores_are_never_lost(
    store_factory: StoreFactory,
) -> None:
    """Two nodes (stores on one database) adding to one counter at once."""
    first, second = await store_factory(), await store_factory()
    await first.put_meta("group:g", {"members": 0})

    async def join(store: Store, times: int) -> None:
        for _ in range(times):
            await store.update_meta("group:g", {}, add={"members": 1})

    await asyncio.gather(*(join(store, 10) for store in (first, second) for _ in range(3)))
    assert await second.get_meta("group:g") == {"members": 60}


async def test_highest_only_raises_a_field(store: Store) -> None:
    merged = await store.update_meta("read:u:c", {}, highest={"seq": 5})  # absent: takes it
    assert merged == {"seq": 5}
    assert await store.update_meta("read:u:c", {}, highest={"seq": 3}) == {"seq": 5}
    merged = await store.update_meta("read:u:c", {"at": "x"}, add={"n": 1}, highest={"seq": 9})
    assert merged == {"seq": 9, "at": "x", "n": 1} == await store.get_meta("read:u:c")


async def test_concurrent_raises_from_two_stores_keep_the_highest(
    store_factory: StoreFactory,
) -> None:
    """Two nodes moving one mark forward at once, in any order: it ends at the
    highest value any of them wrote, never at a later, lower one."""
    first, second = await store_factory(), await store_factory()
    values = list(range(1, 41))
    random.Random(5).shuffle(values)
    await asyncio.gather(
        *(
            (first, second)[n % 2].update_meta("read:u:c", {}, highest={"seq": value})
            for n, value in enumerate(values)
        )
    )
    assert await first.get_meta("read:u:c") == {"seq": 40}


@pytest.mark.parametrize(
    ("fields", "add", "highest"),
    [
        ({"members": 3}, {"members": 1}, {}),  # set and added at once
        ({"members": 3}, {}, {"members": 1}),  # set and raised at once
        ({}, {"members": 1}, {"members": 1}),  # added and raised at once
        ({}, {"members": 1.5}, {}),
        ({}, {"members": True}, {}),
        ({}, {"members": "1"}, {}),
        ({}, {"members": 2**53}, {}),
        ({}, {}, {"members": 2.5}),
        ({}, {}, {"members": -(2**53)}),
        ({}, {"name": 1}, {}),  # holds a string
        ({}, {}, {"name": 1}),
        ({}, {1: 1}, {}),  # not a field name
    ],
)
async def test_bad_additions_and_raises_are_refused_and_change_nothing(
    store: Store, fields: dict[str, Any], add: dict[str, Any], highest: dict[str, Any]
) -> None:
    await store.put_meta("group:g", {"name": "Rust", "members": 2})
    with pytest.raises(InvalidInput):
        await store.update_meta("group:g", fields, add=add, highest=highest)
    assert await store.get_meta("group:g") == {"name": "Rust", "members": 2}


async def test_update_replaces_nested_values_whole(store: Store) -> None:
    await store.put_meta("group:g", {"owner": {"id": "alice", "since": 1}})
    merged = await store.update_meta("group:g", {"owner": {"id": "bob"}})
    assert merged == {"owner": {"id": "bob"}}


async def test_delete_removes_and_absent_is_fine(store: Store) -> None:
    await store.put_meta("group:g", {"name": "Rust"})
    await store.delete_meta("group:g")
    assert await store.get_meta("group:g") is None
    await store.delete_meta("group:g")
    await store.delete_meta("group:never")


async def test_metadata_is_durable(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.put_meta("group:g", {"name": "Rust"})
    await store.update_meta("group:g", {"size": 2})
    store = await store_factory.reopen(store)
    assert await store.get_meta("group:g") == {"name": "Rust", "size": 2}


async def test_metadata_is_independent_of_entries(store: Store) -> None:
    await store.put_meta("group:g", {"name": "Rust"})
    assert await store.last_seq("group:g") == 0
    await store.append("group:g", {"n": 1})
    assert await store.get_meta("group:g") == {"name": "Rust"}


# -- find_meta ----------------------------------------------------------------------


@pytest.fixture
async def directory(store: Store) -> Store:
    records: dict[str, dict[str, Any]] = {
        "group:a": {"open": True, "lang": "rust", "size": 3},
        "group:b": {"open": False, "lang": "rust", "size": 10},
        "group:c": {"open": True, "lang": "go", "size": 3},
        "group:d": {"open": True, "lang": "rust", "size": 1},
        "groupie:x": {"open": True, "lang": "rust", "size": 3},
        "user:alice": {"lang": "rust", "size": 3},
        "user:bob": {"open": 1, "size": True},
    }
    for timeline_id, fields in records.items():
        await store.put_meta(timeline_id, fields)
    return store


def ids(found: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [timeline_id for timeline_id, _ in found]


async def test_find_by_prefix_in_id_order(directory: Store) -> None:
    found = await directory.find_meta("group:")
    assert ids(found) == ["group:a", "group:b", "group:c", "group:d"]  # not groupie:
    assert found[0] == ("group:a", {"open": True, "lang": "rust", "size": 3})


async def test_find_everything_without_a_prefix(directory: Store) -> None:
    assert ids(await directory.find_meta()) == [
        "group:a",
        "group:b",
        "group:c",
        "group:d",
        "groupie:x",
        "user:alice",
        "user:bob",
    ]


async def test_find_by_field_equality(directory: Store) -> None:
    assert ids(await directory.find_meta("group:", where={"lang": "rust"})) == [
        "group:a",
        "group:b",
        "group:d",
    ]
    assert ids(await directory.find_meta("group:", where={"open": True, "lang": "rust"})) == [
        "group:a",
        "group:d",
    ]
    assert ids(await directory.find_meta(where={"size": 3})) == [
        "group:a",
        "group:c",
        "groupie:x",
        "user:alice",
    ]
    assert ids(await directory.find_meta(where={"lang": "cobol"})) == []
    assert ids(await directory.find_meta(where={"missing": "x"})) == []


async def test_find_tells_booleans_from_numbers(directory: Store) -> None:
    """JSON ``true`` is not ``1``: user:bob has open=1 and size=true."""
    assert "user:bob" not in ids(await directory.find_meta(where={"open": True}))
    assert "user:bob" not in ids(await directory.find_meta(where={"size": 1}))
    assert ids(await directory.find_meta(where={"open": 1})) == ["user:bob"]
    assert ids(await directory.find_meta(where={"size": True})) == ["user:bob"]


async def test_find_tells_strings_from_numbers(store: Store) -> None:
    await store.put_meta("t:1", {"v": "3"})
    await store.put_meta("t:2", {"v": 3})
    assert ids(await store.find_meta(where={"v": 3})) == ["t:2"]
    assert ids(await store.find_meta(where={"v": "3"})) == ["t:1"]


async def test_find_pages_with_after_and_limit(directory: Store) -> None:
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        found = await directory.find_meta("group:", where={"open": True}, after=after, limit=2)
        if not found:
            break
        pages.append(ids(found))
        after = found[-1][0]
    assert pages == [["group:a", "group:c"], ["group:d"]]


async def test_find_sees_updates_and_deletes(directory: Store) -> None:
    await directory.update_meta("group:b", {"open": True})
    await directory.delete_meta("group:a")
    assert ids(await directory.find_meta("group:", where={"open": True})) == [
        "group:b",
        "group:c",
        "group:d",
    ]


BAD_FINDS: dict[str, dict[str, Any]] = {
    "list value": {"where": {"tags": ["a"]}},
    "object value": {"where": {"owner": {"id": "a"}}},
    "None value": {"where": {"open": None}},
    "zero limit": {"limit": 0},
    "limit over the cap": {"limit": 1001},
    "prefix not a string": {"prefix": 5},
    "after not a string": {"after": 5},
}


@pytest.mark.parametrize("case", list(BAD_FINDS))
async def test_bad_find_raises_invalid_input(directory: Store, case: str) -> None:
    with pytest.raises(InvalidInput):
        await directory.find_meta(**BAD_FINDS[case])
