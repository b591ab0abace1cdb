"""Store.lock: one holder per key among the stores of a database (the nodes)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from timeline_harness import StoreFactory

from tidings.errors import InvalidInput, Unavailable
from tidings.timeline import Store, locks, open_store


async def test_one_holder_per_key_across_stores_and_other_keys_are_free(
    store_factory: StoreFactory,
) -> None:
    """A read-modify-write under the lock, from two stores (nodes) and several
    tasks each, never interleaves with another on the same key."""
    first, second = await store_factory(), await store_factory()
    await first.put_meta("group:g", {"members": []})
    inside: set[str] = set()

    async def join(store: Store, user: str) -> None:
        async with store.lock("group:g"):
            assert not inside, f"{user} entered while {inside} held the lock"
            inside.add(user)
            record = await store.get_meta("group:g") or {}
            await asyncio.sleep(0.001)
            await store.put_meta("group:g", {"members": [*record["members"], user]})
            inside.discard(user)

    async def elsewhere() -> None:
        async with second.lock("group:h"):  # another key: never waits for group:g
            await first.put_meta("group:h", {"free": True})

    users = [f"u{n}" for n in range(12)]
    await asyncio.gather(
        *(join((first, second)[n % 2], user) for n, user in enumerate(users)), elsewhere()
    )
    record = await second.get_meta("group:g")
    assert record is not None and sorted(record["members"]) == sorted(users)
    assert await first.get_meta("group:h") == {"free": True}


async def test_the_lock_is_released_when_the_holder_fails(store_factory: StoreFactory) -> None:
    first, second = await store_factory(), await store_factory()
    with pytest.raises(RuntimeError):
        async with first.lock("group:g"):
            raise RuntimeError("the step failed")
    async with asyncio.timeout(10), second.lock("group:g"):
        pass


async def test_a_held_lock_keeps_waiters_out_until_it_is_released(
    store_factory: StoreFactory,
) -> None:
    first, second = await store_factory(), await store_factory()
    entered = asyncio.Event()

    async def wait() -> None:
        async with second.lock("group:g"):
            entered.set()

    async with first.lock("group:g"):
        waiter = asyncio.create_task(wait())
        await asyncio.sleep(0.2)
        assert not entered.is_set()
    async with asyncio.timeout(10):
        await waiter


async def test_postgres_gives_up_waiting_after_advisory_wait_s(
    pg_database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(SQLite's locks are one process's: a waiter there waits for the holder.)"""
    monkeypatch.setattr(locks, "ADVISORY_WAIT_S", 0.1)
    first, second = await open_store(pg_database.url), await open_store(pg_database.url)
    try:
        async with first.lock("group:g"):
            with pytest.raises(Unavailable, match="busy"):
                async with second.lock("group:g"):
                    pass
        async with asyncio.timeout(10), second.lock("group:g"):  # nothing left behind
            pass
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("key", ["", None, 7])
async def test_a_lock_key_is_a_non_empty_string(store: Store, key: object) -> None:
    with pytest.raises(InvalidInput):
        store.lock(key)  # type: ignore[arg-type]
