"""PostgreSQL's choice between walking the scopes and reading the GIN index
(issue 7): what the index is expected to cost, read from PostgreSQL's lexeme
statistics, and a rare phrase of frequent terms found by walking when the
index would cost more, with the same hits as the index gives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from timeline_harness import FakeClock

from tidings.errors import Unavailable
from tidings.timeline import Scope, SearchConfig, Store, open_store, postgres_search_read
from tidings.timeline.search import parse_query

CONFIG = SearchConfig(kinds=("group",), fields=("text",))


def stats(rows: float, frequencies: dict[str, float]) -> postgres_search_read.LexemeStats:
    known = postgres_search_read.LexemeStats()
    known.rows = rows
    known.frequencies = frequencies
    return known


FREQUENT = {"的一": 0.23, "一的": 0.23, "的的": 0.37, "的我": 0.07, "hello": 0.1, "world": 0.05}


@pytest.mark.parametrize(
    ("query", "postings"),
    [
        ("的一的的", 0.23 + 0.23 + 0.37),  # every term frequent: all their postings
        ("一的的我", 0.23 + 4 * 0.07 + 0.07),  # the rarest term guides the others' reads
        ("的一的桐", 0.0),  # a term too rare to be listed: nearly nothing to read
        ("hello wor", 0.1 + 0.05),  # a prefix reads every lexeme it starts
        ("的一", 0.0),  # one term: the walk's density rule decides
        ("hello", 0.0),
    ],
)
def test_the_index_is_expected_to_read_the_postings_of_its_terms(
    query: str, postings: float
) -> None:
    estimate = stats(1_000_000, FREQUENT).gin_entries(parse_query(query))
    expected = 1_000_000 * postings / postgres_search_read.GIN_POSTINGS_PER_ENTRY
    assert estimate == pytest.approx(expected, abs=1)


def test_nothing_is_expected_without_statistics() -> None:
    assert postgres_search_read.LexemeStats().gin_entries(parse_query("的一的的")) == 0


@pytest.fixture
async def store(pg_database: Any, clock: FakeClock) -> AsyncIterator[Store]:
    await pg_database.empty()
    opened = await open_store(pg_database.url, search=CONFIG, clock=clock, purge_interval=None)
    try:
        yield opened
    finally:
        await opened.close()


async def test_lexeme_statistics_are_read_from_analyze_and_kept_a_while(
    pg_database: Any, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(400):
        clock.advance(1)
        await store.append("group:a", {"text": "的一的" if n % 4 else "梧桐"})
    conn = await asyncpg.connect(pg_database.url)
    try:
        await conn.execute("ANALYZE search_entries")
        reads: list[str] = []

        async def fetch(sql: str, *args: Any) -> Any:
            reads.append(sql)
            return await conn.fetch(sql, *args)

        known = postgres_search_read.LexemeStats()
        await known.refresh(fetch)
        assert known.rows == 400
        assert known.frequencies["的一"] == pytest.approx(0.75, abs=0.01)
        await known.refresh(fetch)  # within LEXEME_STATS_TTL_S: not read again
        assert len(reads) == 1
        monkeypatch.setattr(postgres_search_read, "LEXEME_STATS_TTL_S", 0.0)
        await conn.execute("DELETE FROM search_entries")
        await conn.execute("ANALYZE search_entries")
        await known.refresh(fetch)
        assert len(reads) == 2 and known.rows == 0
        assert known.gin_entries(parse_query("的一的")) == 0
    finally:
        await conn.close()


async def test_a_failed_statistics_read_leaves_the_statistics_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    known = stats(1_000, {"的一": 0.5})

    async def fetch(sql: str, *args: Any) -> Any:
        raise Unavailable("the database is unavailable")

    await known.refresh(fetch)
    assert known.frequencies == {"的一": 0.5} and known.rows == 1_000
    assert "lexeme statistics" in caplog.text


async def test_a_rare_phrase_of_frequent_terms_is_walked_when_the_index_costs_more(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four conversations where every entry holds the phrase's terms and one in
    nine the phrase: below the walk's density threshold, so with the index
    cheap it is read through the index, and with the index dear it is walked
    (never touching the index); every page is the same either way."""
    scopes = [Scope(f"group:{n}") for n in range(4)]
    hits = []
    for n in range(180):
        clock.advance(1)
        text = "的一的的" if n % 9 == 4 else "的一 一的 的的"
        entry = await store.append(scopes[n * 5 % 4].timeline_id, {"text": text})
        if text == "的一的的":
            hits.append(f"{entry.timeline_id}#{entry.seq}")
    monkeypatch.setattr(postgres_search_read, "WALK_FIRST", 40)
    monkeypatch.setattr(postgres_search_read, "WALK_DENSITY", 0.5)
    read_index: list[bool] = []
    real = postgres_search_read.fetch_custom_planned

    async def spy(conn: Any, sql: str, *args: Any) -> Any:
        read_index.append(True)
        return await real(conn, sql, *args)

    monkeypatch.setattr(postgres_search_read, "fetch_custom_planned", spy)

    async def pages() -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            page = await store.search("的一的的", scopes, limit=3, cursor=cursor)
            seen += [f"{hit.timeline_id}#{hit.seq}" for hit in page.hits]
            if page.cursor is None:
                return seen
            cursor = page.cursor

    cheap = await pages()
    assert cheap == hits[::-1] and read_index
    read_index.clear()
    monkeypatch.setattr(postgres_search_read.LexemeStats, "gin_entries", lambda self, p: 10**6)
    assert await pages() == cheap
    assert not read_index
