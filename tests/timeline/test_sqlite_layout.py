"""The SQLite backend's storage layout: a fanned-out message is stored once,
bodies are freed with their last entry, and entries read the same before and
after they move from the staging table to the main one; search documents
staged before a migration survive it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tidings.timeline import (
    Append,
    Scope,
    SearchConfig,
    Store,
    open_store,
    sqlite_schema,
    sqlite_search,
)
from tidings.timeline import sqlite as sqlite_backend

INBOXES = [f"inbox:user{n}" for n in range(100)]


def _count(path: Path, sql: str) -> int:
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute(sql).fetchone()
    conn.close()
    return int(count)


async def count(path: Path, sql: str) -> int:
    return await asyncio.to_thread(_count, path, sql)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "layout.db"


async def test_a_fanned_out_message_is_stored_once(db: Path) -> None:
    message = {"text": "x" * 1000}
    async with await open_store(f"sqlite:///{db}", purge_interval=None) as store:
        await store.append_many(
            [Append("group:g", message)] + [Append(t, message, ref=0) for t in INBOXES]
        )
    assert await count(db, "SELECT count(*) FROM bodies") == 1
    assert await count(db, "SELECT refs FROM bodies") == 1 + len(INBOXES)


async def test_bodies_are_copied_on_write_and_freed_with_their_last_entry(db: Path) -> None:
    async with await open_store(f"sqlite:///{db}", purge_interval=None) as store:
        await store.append_many([Append(t, {"text": "shared"}) for t in INBOXES[:3]])
        await store.update(INBOXES[0], 1, {"read": True})
    assert await count(db, "SELECT count(*) FROM bodies") == 2
    async with await open_store(f"sqlite:///{db}", purge_interval=None) as store:
        for timeline_id in INBOXES[:3]:
            await store.delete(timeline_id, 1)
    assert await count(db, "SELECT count(*) FROM bodies") == 0


async def test_purge_frees_bodies(db: Path) -> None:
    now = [1_000.0]
    async with await open_store(
        f"sqlite:///{db}", retention={"inbox": 10.0}, clock=lambda: now[0], purge_interval=None
    ) as store:
        await store.append_many([Append(t, {"text": "shared"}) for t in INBOXES])
        now[0] += 11
        assert await store.purge_expired() == len(INBOXES)
    assert await count(db, "SELECT count(*) FROM bodies") == 0


async def test_entries_read_the_same_across_merges(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a tiny staging table, merges run all the time; every entry stays
    readable exactly once, dedupe and seqs keep working across both tables."""
    monkeypatch.setattr(sqlite_backend, "STAGED_ROWS", 8)
    store: Store = await open_store(f"sqlite:///{db}", purge_interval=None)
    try:
        timelines = ["t:a", "t:b", "t:c"]
        for n in range(30):
            await store.append_many([Append(t, {"n": n}, client_id=f"c{n}") for t in timelines])
        assert await count(db, "SELECT count(*) FROM entries") > 0  # merges did run
        await store.delete("t:a", 3)
        await store.update("t:b", 4, {"edited": True})
        retry = await store.append("t:c", {"n": 5}, client_id="c5")
        assert retry.seq == 6
        for timeline_id in timelines:
            page = await store.scan(timeline_id, limit=100)
            expected = [s for s in range(1, 31) if not (timeline_id == "t:a" and s == 3)]
            assert [e.seq for e in page.entries] == expected
            assert [e.message["n"] for e in page.entries] == [s - 1 for s in expected]
            assert await store.last_seq(timeline_id) == 30
        entry = await store.get("t:b", 4)
        assert entry is not None and entry.message == {"n": 3, "edited": True}
        assert (await store.append("t:a", {"n": 30})).seq == 31
    finally:
        await store.close()


async def test_staged_search_documents_survive_the_migration_to_staging_order(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 7 re-creates ``search_pending`` without a key on ``id``: the
    documents staged before it are still found, and edited, afterwards."""
    config = SearchConfig(kinds=("group",))
    with monkeypatch.context() as before:
        before.setattr(sqlite_schema, "MIGRATIONS", sqlite_schema.MIGRATIONS[:6])
        async with await open_store(f"sqlite:///{db}", search=config, purge_interval=None) as old:
            for n in range(3):
                await old.append(f"group:{n}", {"text": f"梧桐 {n}"})
    assert await count(db, "SELECT count(*) FROM search_pending") == 3
    async with await open_store(f"sqlite:///{db}", search=config, purge_interval=None) as store:
        page = await store.search("梧桐", [Scope(f"group:{n}") for n in range(3)])
        assert [hit.timeline_id for hit in page.hits] == ["group:2", "group:1", "group:0"]
        await store.update("group:1", 1, {"text": "凤凰"})
        assert (await store.search("梧桐", [Scope("group:1")])).hits == ()
        assert len((await store.search("凤凰", [Scope("group:1")])).hits) == 1
    assert await count(db, "SELECT count(*) FROM search_pending") == 3
    assert await count(db, "SELECT count(*) FROM schema_migrations WHERE version = 7") == 1
    key = "SELECT count(*) FROM pragma_table_info('search_pending') WHERE pk > 0"
    assert await count(db, key) == 0


async def test_a_document_staged_twice_is_merged_once_with_its_last_version(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No write stages a document twice, and ``search_pending`` has no key to
    refuse it: were it to happen, the merge keeps the last version rather than
    failing (and every merge after it)."""
    monkeypatch.setattr(sqlite_search, "STAGED_DOCS", 3)
    config = SearchConfig(kinds=("group",))
    async with await open_store(f"sqlite:///{db}", search=config, purge_interval=None) as store:
        await store.append("group:a", {"text": "梧桐"})
        with sqlite3.connect(db) as conn:
            conn.execute(
                "INSERT INTO search_pending (id, created_at, facet, body, terms)"
                " SELECT id, created_at, facet, '凤凰', '凤凰 凰' FROM search_pending"
            )
        conn.close()
        for _ in range(2):
            await store.append("group:b", {"text": "梧桐"})
        assert await count(db, "SELECT count(*) FROM search_pending") == 0
        assert await count(db, "SELECT count(*) FROM search_docs") == 3
        assert len((await store.search("凤凰", [Scope("group:a")])).hits) == 1
        assert (await store.search("梧桐", [Scope("group:a")])).hits == ()
