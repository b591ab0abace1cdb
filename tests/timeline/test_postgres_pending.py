"""PostgreSQL merges its search index's pending list in the background once a
process has written ``merge_pending_after`` index rows (issue 7), so that no
append pays for the merge; a failed merge is logged and loses nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from tidings.errors import InvalidInput
from tidings.timeline import Append, Scope, SearchConfig, Store, open_store, postgres_search

CONFIG = SearchConfig(kinds=("group",))
MERGE = "SELECT gin_clean_pending_list('search_entries_terms'::regclass)"


async def opened(pg_database: Any, **options: Any) -> Store:
    await pg_database.empty()
    return await open_store(pg_database.url, search=CONFIG, purge_interval=None, **options)


async def merged(store: Store) -> None:
    """Wait for the background merge, if one is running."""
    task = store.backend._merging  # type: ignore[attr-defined]
    if task is not None:
        async with asyncio.timeout(30):
            await task


async def pages_waiting(pg_database: Any) -> int:
    """Merge the pending list now; returns how many pages it held."""
    conn = await asyncpg.connect(pg_database.url)
    try:
        return int(await conn.fetchval(MERGE))
    finally:
        await conn.close()


async def send(store: Store, count: int) -> None:
    for n in range(count):
        await store.append_many(
            [Append("group:g", {"text": f"梧桐 {n}"}), Append("inbox:u", {"text": "x"}, ref=0)]
        )


async def test_the_pending_list_is_merged_at_the_first_index_row_and_after_enough_more(
    pg_database: Any,
) -> None:
    store = await opened(pg_database, merge_pending_after=3)
    try:
        await send(store, 1)  # what earlier processes left is merged first
        await merged(store)
        await send(store, 2)  # 2 index rows (inbox entries are not indexed)
        assert store.backend._merging is None  # type: ignore[attr-defined]
        await send(store, 1)  # the third
        await merged(store)
        assert await pages_waiting(pg_database) == 0
        assert len((await store.search("梧桐", [Scope("group:g")])).hits) == 4
    finally:
        await store.close()


async def test_without_a_limit_the_rows_wait_for_the_append_that_fills_the_list(
    pg_database: Any,
) -> None:
    store = await opened(pg_database, merge_pending_after=None)
    try:
        await send(store, 3)
        assert store.backend._merging is None  # type: ignore[attr-defined]
        assert await pages_waiting(pg_database) > 0
    finally:
        await store.close()


async def test_a_failed_merge_is_logged_and_loses_nothing(
    pg_database: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(postgres_search, "MERGE_PENDING", "SELECT no_such_function()")
    store = await opened(pg_database, merge_pending_after=1)
    try:
        await send(store, 1)
        await merged(store)
        assert "pending list" in caplog.text
        await send(store, 1)
        await merged(store)
        assert len((await store.search("梧桐", [Scope("group:g")])).hits) == 2
    finally:
        await store.close()


async def test_closing_stops_a_merge_under_way(
    pg_database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_search, "MERGE_PENDING", "SELECT pg_sleep(60)")
    store = await opened(pg_database, merge_pending_after=1)
    await send(store, 1)
    task = store.backend._merging  # type: ignore[attr-defined]
    assert task is not None
    async with asyncio.timeout(30):
        await store.close()
    assert task.done()


@pytest.mark.parametrize("value", [0, -5, 2.5, "7000"])
async def test_merge_pending_after_is_a_positive_number_of_rows(
    pg_database: Any, value: object
) -> None:
    with pytest.raises(InvalidInput, match="merge_pending_after"):
        await open_store(pg_database.url, merge_pending_after=value)
