"""The SQLite backend's storage layout: a fanned-out message is stored once,
bodies are freed with their last entry, and entries read the same before and
after they move from the staging table to the main one."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tidings.timeline import Append, Store, open_store
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
