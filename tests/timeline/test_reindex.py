"""Rebuilding the search index from what is stored (``Store.reindex``), on
every backend: entries stored before the store indexed anything, rows made by
other term rules, writes going on during the rebuild, and metadata."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from typing import Any

import asyncpg
import pytest
from timeline_harness import FakeClock, StoreFactory

from tidings.errors import InvalidInput
from tidings.timeline import (
    ReindexCounts,
    Scope,
    SearchConfig,
    Store,
    open_store,
    postgres_search,
    reindexing,
    sqlite_search,
)

CONFIG = SearchConfig(
    kinds=("dm", "group"),
    fields=("text",),
    when={"kind": ("text",)},
    facet="from",
    meta={"user": ("display_name",), "group": ("name",)},
)
ALL = [Scope("group:a"), Scope("group:b"), Scope("dm:x:y")]

TEXTS = [
    ("group:a", "alice", "梧桐树下有一只凤凰"),
    ("group:a", "bob", "我们用Timeline模型做IM开发"),
    ("group:b", "carol", "群里今天很热闹"),
    ("dm:x:y", "bob", "Hello World, the SEARCH works"),
    ("dm:x:y", "alice", "to be recalled: 独角兽"),
    ("dm:x:y", "alice", "to be edited: 白杨"),
]


@pytest.fixture(autouse=True, params=["small-batches", "default-batches"])
def batches(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rebuild in batches of two (many transactions, long timelines split
    across them) with every new SQLite document merged into FTS5 at once; or
    in the default batches with documents staged."""
    if request.param == "small-batches":
        monkeypatch.setattr(reindexing, "ENTRY_PAGE", 2)
        monkeypatch.setattr(reindexing, "META_PAGE", 2)
        monkeypatch.setattr(sqlite_search, "STAGED_DOCS", 1)
        monkeypatch.setattr(sqlite_search, "DROP_TIMELINES", 1)


async def found(store: Store, query: str, scopes: list[Scope] = ALL, **options: Any) -> list[str]:
    """Every hit of ``query``, all pages, newest first."""
    keys: list[str] = []
    cursor = None
    while True:
        page = await store.search(query, scopes, cursor=cursor, limit=100, **options)
        keys += [f"{hit.timeline_id}#{hit.seq}" for hit in page.hits]
        if page.cursor is None:
            return keys
        cursor = page.cursor


async def meta_ids(store: Store, kind: str, query: str) -> list[str]:
    return [record_id for record_id, _ in await store.search_meta(kind, query)]


async def unindexed_history(store_factory: StoreFactory, clock: FakeClock) -> None:
    """What a store that indexed nothing was given: messages, an edit, a
    recall, entries that are never indexed, user and group records."""
    store = await store_factory()
    for timeline_id, sender, text in TEXTS:
        clock.advance(1)
        await store.append(timeline_id, {"kind": "text", "text": text, "from": sender})
    await store.update("dm:x:y", 2, {"text": "", "recalled": True})
    await store.update("dm:x:y", 3, {"text": "edited: 胡杨"})
    await store.append("group:a", {"kind": "system", "text": "凤凰 joined"})
    await store.append("inbox:alice", {"kind": "text", "text": "梧桐 copy", "from": "u"})
    await store.put_meta("user:alice", {"display_name": "爱丽丝 Alice"})
    await store.put_meta("user:bob", {"display_name": "Bob"})
    await store.put_meta("group:g1", {"name": "梧桐读书会"})
    await store.put_meta("device:d1", {"name": "梧桐 phone"})
    await store_factory.close(store)


@pytest.fixture
async def stored(store_factory: StoreFactory, clock: FakeClock) -> Store:
    """A store indexing CONFIG over history written while nothing was indexed."""
    await unindexed_history(store_factory, clock)
    return await store_factory(search=CONFIG)


async def test_entries_stored_before_indexing_are_found_after_a_reindex(stored: Store) -> None:
    assert await found(stored, "梧桐") == []
    assert await meta_ids(stored, "user", "alice") == []
    counts = await stored.reindex()
    assert counts == ReindexCounts(timelines=3, entries=5, meta=3, rewritten=8)
    assert await found(stored, "梧桐") == ["group:a#1"]  # two CJK characters
    assert await found(stored, "群") == ["group:b#1"]  # one
    assert await found(stored, "timeline") == ["group:a#2"]  # English
    assert await found(stored, "hello wor") == ["dm:x:y#1"]
    assert await found(stored, "凤凰") == ["group:a#1"]  # not the system entry
    assert await found(stored, "独角兽") == []  # recalled
    assert await found(stored, "白杨") == []  # edited: found by its new text
    assert await found(stored, "胡杨") == ["dm:x:y#3"]
    assert await found(stored, "梧桐", [Scope("inbox:alice")]) == []  # not an indexed kind
    assert await found(stored, "hello", facet="bob") == ["dm:x:y#1"]
    assert await found(stored, "hello", facet="alice") == []
    assert await meta_ids(stored, "user", "alice") == ["user:alice"]
    assert await meta_ids(stored, "user", "丽") == ["user:alice"]
    assert await meta_ids(stored, "group", "读书") == ["group:g1"]
    assert await meta_ids(stored, "device", "梧桐") == []  # not a configured kind


async def test_a_second_reindex_changes_nothing(store_factory: StoreFactory, stored: Store) -> None:
    first = await stored.reindex()
    before = {q: await found(stored, q) for q in ("梧桐", "群", "hello", "胡杨", "杨", "独角兽")}
    second = await stored.reindex()
    assert second == ReindexCounts(first.timelines, first.entries, first.meta, rewritten=0)
    assert {q: await found(stored, q) for q in before} == before
    assert before["杨"] == ["dm:x:y#3"]
    assert_fts5_matches_its_documents(store_factory, stored)


async def test_entries_indexed_as_they_were_sent_are_kept(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    store = await store_factory(search=CONFIG)
    for timeline_id, sender, text in TEXTS:
        clock.advance(1)
        await store.append(timeline_id, {"kind": "text", "text": text, "from": sender})
    await store.put_meta("user:alice", {"display_name": "爱丽丝"})
    counts = await store.reindex()
    assert counts == ReindexCounts(timelines=3, entries=6, meta=1, rewritten=0)
    assert await found(store, "凤凰") == ["group:a#1"]


async def test_progress_is_reported_after_every_batch(stored: Store) -> None:
    seen: list[ReindexCounts] = []
    counts = await stored.reindex(progress=seen.append)
    assert seen[-1] == counts
    assert all(a.entries <= b.entries and a.meta <= b.meta for a, b in itertools.pairwise(seen))


async def test_a_reindex_needs_a_search_config(store_factory: StoreFactory) -> None:
    store = await store_factory()
    with pytest.raises(InvalidInput):
        await store.reindex()


async def test_rows_of_kinds_no_longer_indexed_are_removed(
    store_factory: StoreFactory,
) -> None:
    wider = SearchConfig(
        kinds=("dm", "group", "inbox"), when=CONFIG.when, facet="from", meta={"device": ("name",)}
    )
    store = await store_factory(search=wider)
    await store.append("inbox:alice", {"kind": "text", "text": "梧桐", "from": "u"})
    await store.append("group:a", {"kind": "text", "text": "梧桐", "from": "u"})
    await store.put_meta("device:d1", {"name": "梧桐 phone"})
    store = await store_factory.reopen(store, search=CONFIG)
    scopes = [Scope("inbox:alice"), Scope("group:a")]
    assert sorted(await found(store, "梧桐", scopes)) == ["group:a#1", "inbox:alice#1"]
    counts = await store.reindex()
    assert counts.rewritten == 2  # the inbox row and the device record's text
    assert await found(store, "梧桐", scopes) == ["group:a#1"]
    store = await store_factory.reopen(store, search=wider)
    assert await meta_ids(store, "device", "梧桐") == []


async def test_a_reindex_replaces_rows_made_by_other_term_rules(
    store_factory: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite removes an FTS5 row by its terms, so rows of other rules need
    # ``full``; PostgreSQL replaces rows by key and compares their terms.
    full = store_factory.backend.startswith("sqlite")
    with monkeypatch.context() as old_rules:
        old_rules.setattr(sqlite_search, "terms", lambda text: ["stale", "rules"])
        old_rules.setattr(postgres_search, "tsvector", lambda text: "'stale':1 'rules':2")
        store = await store_factory(search=CONFIG)
        for timeline_id, sender, text in TEXTS[:4]:
            await store.append(timeline_id, {"kind": "text", "text": text, "from": sender})
        await store.update("group:a", 1, {"text": "更新 stale"})
    assert len(await found(store, "stale")) == 4
    counts = await store.reindex(full=full)
    assert counts.entries == 4
    assert await found(store, "rules") == []
    assert await found(store, "stale") == ["group:a#1"]
    assert await found(store, "梧桐") == []
    assert await found(store, "IM开发") == ["group:a#2"]
    assert (await store.reindex()).rewritten == 0
    assert_fts5_matches_its_documents(store_factory, store)


def fts5_vocabulary(store: Store) -> dict[str, tuple[int, int]]:
    """What the SQLite FTS5 index holds: documents and occurrences per term."""
    conn = sqlite3.connect(store.backend.path)  # type: ignore[attr-defined]
    try:
        return {row[0]: (row[1], row[2]) for row in conn.execute("SELECT * FROM search_vocab")}
    finally:
        conn.close()


def vocabulary_of(store: Store) -> dict[str, tuple[int, int]]:
    """What the FTS5 index must hold: the terms of ``search_docs``, by the current rules."""
    conn = sqlite3.connect(store.backend.path)  # type: ignore[attr-defined]
    try:
        bodies = [row[0] for row in conn.execute("SELECT body FROM search_docs")]
    finally:
        conn.close()
    counts: dict[str, tuple[int, int]] = {}
    for body in bodies:
        found = sqlite_search.terms(body)
        for term in set(found):
            docs, occurrences = counts.get(term, (0, 0))
            counts[term] = (docs + 1, occurrences + found.count(term))
    return counts


def assert_fts5_matches_its_documents(store_factory: StoreFactory, store: Store) -> None:
    """On SQLite: no posting left behind, none missing."""
    if store_factory.backend.startswith("sqlite"):
        assert fts5_vocabulary(store) == vocabulary_of(store)


@pytest.mark.parametrize("writer", ["same-store", "another-store"])
async def test_writes_during_a_reindex_are_indexed_exactly_once(
    store_factory: StoreFactory,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    writer: str,
) -> None:
    monkeypatch.setattr(reindexing, "ENTRY_PAGE", 3)
    timelines = [f"group:t{n}" for n in range(6)] + [f"dm:u{n}:v" for n in range(6)]
    plain = await store_factory()
    for n in range(60):
        await plain.append(timelines[n % 12], {"kind": "text", "text": f"旧 old{n}", "from": "u"})
    await store_factory.close(plain)
    rebuilding = await store_factory(search=CONFIG)
    server = rebuilding if writer == "same-store" else await store_factory(search=CONFIG)
    scopes = [Scope(t) for t in timelines]
    sent = 0
    seen_while_sending: list[int] = []

    async def send() -> None:
        nonlocal sent
        for n in range(60):
            timeline_id = timelines[(n * 5) % 12]
            entry = await server.append(
                timeline_id, {"kind": "text", "text": f"新 new{n}", "from": "w"}
            )
            if n % 10 == 3:
                await server.update(timeline_id, entry.seq, {"text": "", "recalled": True})
            elif n % 10 == 7:
                await server.update(timeline_id, entry.seq - 1, {"text": f"改 edited{n}"})
            elif n % 10 == 9:
                await server.delete(timeline_id, entry.seq)
            sent += 1
            # Gaps between commits, as real traffic has: a writer of another
            # process (store) waits for the write lock by polling.
            await asyncio.sleep(0.002)

    async def rebuild() -> ReindexCounts:
        # Once the writer is under way, so that the rebuild cannot finish
        # before its first commit (a writer of another store polls for the lock).
        while sent < 5:
            await asyncio.sleep(0.001)
        return await rebuilding.reindex(progress=lambda _: seen_while_sending.append(sent))

    counts, _ = await asyncio.gather(rebuild(), send())
    assert any(0 < n < 60 for n in seen_while_sending), seen_while_sending  # interleaved

    expected: dict[str, list[str]] = {"旧": [], "新": [], "改": []}
    for timeline_id in timelines:
        page = await server.scan(timeline_id, limit=1000)
        for entry in page.entries:
            text = entry.message["text"]
            if text:
                expected[text[0]].append(f"{timeline_id}#{entry.seq}")
    for query, keys in expected.items():
        hits = await found(server, query, scopes)
        assert len(hits) == len(set(hits)), query  # never twice
        assert sorted(hits) == sorted(keys), query  # never lost, never stale
    # Of the 60 new messages, 6 were recalled, 6 deleted, 5 edited (and 1 old one).
    assert len(expected["改"]) == 6 and len(expected["新"]) == 60 - 6 - 6 - 5
    assert (await rebuilding.reindex()).rewritten == 0
    assert counts.timelines == 12
    assert_fts5_matches_its_documents(store_factory, server)


async def test_a_delete_waiting_for_the_entry_removes_the_row_written_meanwhile(
    pg_database: Any, clock: FakeClock
) -> None:
    """PostgreSQL: a delete that waits for an entry's lock (held by an update
    or a rebuild batch) removes the index row the holder wrote. (One
    ``WITH … DELETE`` statement looked for it in a snapshot taken before the
    wait, and left it behind.)"""
    await pg_database.empty()
    store = await open_store(pg_database.url, search=CONFIG, clock=clock, purge_interval=None)
    holder = await asyncpg.connect(pg_database.url)
    try:
        await store.append("group:a", {"kind": "text", "text": "梧桐", "from": "u"})
        async with holder.transaction():
            await holder.execute(
                "SELECT 1 FROM entries WHERE timeline_id = 'group:a' AND seq = 1 FOR UPDATE"
            )
            deleting = asyncio.create_task(store.delete("group:a", 1))
            await asyncio.sleep(0.2)  # the delete now waits for the lock
            await holder.execute("DELETE FROM search_entries")
            await holder.execute(
                "INSERT INTO search_entries VALUES ('group:a', 1, 0, NULL, '梧桐', $1::tsvector)",
                postgres_search.tsvector("梧桐"),
            )
        await deleting
        assert await holder.fetchval("SELECT count(*) FROM search_entries") == 0
        assert await found(store, "梧桐") == []
    finally:
        await holder.close()
        await store.close()
