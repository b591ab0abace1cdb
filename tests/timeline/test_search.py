"""Search over entries and metadata (issue 7), on every backend: CJK by bigrams,
English by word, scopes passed in by the caller, the index kept in step with
appends, updates, deletes and purges, and hostile queries treated as text."""

from __future__ import annotations

from typing import Any

import pytest
from timeline_harness import DAY, FakeClock, StoreFactory

from tidings.errors import InvalidInput
from tidings.timeline import (
    Append,
    Scope,
    SearchConfig,
    Store,
    postgres_search_read,
    sqlite_search,
    sqlite_search_read,
)

CONFIG = SearchConfig(
    kinds=("dm", "group"),
    fields=("text",),
    when={"kind": ("text",)},
    facet="from",
    meta={"user": ("display_name", "signature"), "group": ("name", "description")},
)
ALL = [Scope("group:a"), Scope("group:b"), Scope("dm:x:y")]

TEXTS = [
    ("group:a", "alice", "梧桐树下有一只凤凰"),
    ("group:a", "bob", "我们用Timeline模型做IM开发"),
    ("group:b", "carol", "群里今天很热闹"),
    ("group:b", "alice", "東京タワーに行きました"),
    ("dm:x:y", "bob", "Hello World, the SEARCH works"),
    ("dm:x:y", "alice", "nothing to see here"),
]


@pytest.fixture(autouse=True, params=["staged", "merged", "mixed"])
def staging(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test down each of the backends' read paths.

    SQLite stages new documents before they enter its FTS5 index and reads
    the index in one pass or scope by scope: documents staged; merged at once
    and read scope by scope in small windows; and some of each, read in one
    pass. PostgreSQL walks the scopes newest first or reads the GIN index:
    a walk in large windows; a walk one scope and one or two entries at a
    time; and a walk that runs out of budget and falls back to the index.
    (Scope by scope, SQLite reads the scopes left once it holds a page of
    hits without the index, one id window each; in one pass, it reads the
    matches' documents in rounds, one each at first.)
    """
    if request.param == "merged":
        monkeypatch.setattr(sqlite_search, "STAGED_DOCS", 1)
        monkeypatch.setattr(sqlite_search_read, "SPARSE_IN_SCOPE", 0)
        monkeypatch.setattr(sqlite_search_read, "WINDOW", 2)
        monkeypatch.setattr(sqlite_search_read, "TAIL_WINDOW", 1)
        monkeypatch.setattr(postgres_search_read, "WALK_FIRST", 1)
        monkeypatch.setattr(postgres_search_read, "WALK_FIRST_WINDOW", 1)
        monkeypatch.setattr(postgres_search_read, "WALK_DENSITY", 0)
        monkeypatch.setattr(postgres_search_read, "WALK_LARGEST_WINDOW", 2)
        monkeypatch.setattr(postgres_search_read, "WALK_BATCH", 1)
    elif request.param == "mixed":
        monkeypatch.setattr(sqlite_search, "STAGED_DOCS", 3)
        monkeypatch.setattr(sqlite_search_read, "SPARSE_FIRST", 1)
        monkeypatch.setattr(postgres_search_read, "WALK_FIRST", 1)
        monkeypatch.setattr(postgres_search_read, "WALK_FIRST_WINDOW", 1)
        monkeypatch.setattr(postgres_search_read, "WALK_DENSITY", 0)
        monkeypatch.setattr(postgres_search_read, "WALK_BUDGET", 2)


@pytest.fixture
async def indexed(store_factory: StoreFactory, clock: FakeClock) -> Store:
    store = await store_factory(search=CONFIG)
    for timeline_id, sender, text in TEXTS:
        clock.advance(1)
        await store.append(timeline_id, {"kind": "text", "text": text, "from": sender})
    return store


async def found(store: Store, query: str, scopes: list[Scope] = ALL, **options: Any) -> list[str]:
    page = await store.search(query, scopes, **options)
    return [f"{hit.timeline_id}#{hit.seq}" for hit in page.hits]


async def every_page(store: Store, query: str) -> list[str]:
    """The hits of every newest-first page of ``query`` (three a page), in order."""
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.search(query, ALL, limit=3, cursor=cursor)
        seen += [f"{hit.timeline_id}#{hit.seq}" for hit in page.hits]
        if page.cursor is None:
            return seen
        cursor = page.cursor


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("梧桐", ["group:a#1"]),  # two CJK characters
        ("群", ["group:b#1"]),  # one CJK character
        ("桐", ["group:a#1"]),  # one character inside a run
        ("凰", ["group:a#1"]),  # the last character of a run
        ("梧桐树下", ["group:a#1"]),  # a longer run: a phrase of bigrams
        ("IM开发", ["group:a#2"]),  # mixed scripts
        ("Timeline模型", ["group:a#2"]),
        ("timeline", ["group:a#2"]),  # English regardless of case
        ("SEARCH", ["dm:x:y#1"]),
        ("hello world", ["dm:x:y#1"]),  # every part must match
        ("wor", ["dm:x:y#1"]),  # the last word is a prefix
        ("東京", ["group:b#2"]),  # Japanese
        ("タワー", ["group:b#2"]),
        ("梧凤", []),  # characters that are not adjacent
        ("IM模型", []),  # terms in the text, but not as this phrase
        ("hello nothing", []),
        ("凤凰树", []),
    ],
)
async def test_queries(indexed: Store, query: str, expected: list[str]) -> None:
    assert await found(indexed, query) == expected


async def test_newest_first_and_snippet_marks_the_match(indexed: Store) -> None:
    assert await found(indexed, "s") == ["dm:x:y#2", "dm:x:y#1"]
    page = await indexed.search("凤凰", ALL)
    (hit,) = page.hits
    assert [text for text, matched in hit.snippet if matched] == ["凤凰"]
    assert "".join(text for text, _ in hit.snippet) == "梧桐树下有一只凤凰"
    assert hit.facet == "alice"


async def test_only_the_scopes_are_searched(indexed: Store) -> None:
    assert await found(indexed, "alice") == []  # facets are not text
    assert await found(indexed, "梧桐", [Scope("group:b")]) == []
    assert await found(indexed, "群", [Scope("group:a"), Scope("dm:x:y")]) == []
    # Seq windows are inclusive at both ends.
    assert await found(indexed, "timeline", [Scope("group:a", first=2)]) == ["group:a#2"]
    assert await found(indexed, "timeline", [Scope("group:a", first=3)]) == []
    assert await found(indexed, "梧桐", [Scope("group:a", last=1)]) == ["group:a#1"]
    assert await found(indexed, "timeline", [Scope("group:a", last=1)]) == []
    assert await found(indexed, "梧桐", []) == []


async def test_filters_by_facet_and_time(indexed: Store, clock: FakeClock) -> None:
    start = clock.now - len(TEXTS)
    assert await found(indexed, "s", facet="bob") == ["dm:x:y#1"]
    assert await found(indexed, "s", before=start + 6) == ["dm:x:y#1"]
    assert await found(indexed, "s", after=start + 6) == ["dm:x:y#2"]


async def test_paging_visits_every_hit_once(store_factory: StoreFactory, clock: FakeClock) -> None:
    store = await store_factory(search=CONFIG)
    for n in range(7):
        for timeline_id in ("group:a", "group:b"):
            await store.append(timeline_id, {"kind": "text", "text": f"群 {n}", "from": "u"})
        clock.advance(1)  # two hits per clock reading: ties are broken by id
    expected = [f"{t}#{seq}" for seq in range(7, 0, -1) for t in ("group:b", "group:a")]
    assert await every_page(store, "群") == expected


async def test_newest_hits_of_many_scopes_between_misses_gaps_and_filters(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    """Six conversations written in turn, each entry a hit, a miss or not
    indexed at all (a gap in the indexed seqs): every page holds the newest
    hits left, with and without a sender filter and a time bound."""
    store = await store_factory(search=CONFIG)
    scopes = [Scope(f"group:s{n}") for n in range(6)]
    hits: list[tuple[float, str, str]] = []  # (time, "timeline#seq", sender)
    for step in range(60):
        clock.advance(1)
        timeline_id = scopes[(step * 7) % 6].timeline_id
        sender = "ann" if step % 3 else "bob"
        kind = "system" if step % 5 == 4 else "text"
        text = "梧桐 hit" if step % 4 != 1 else "miss"
        entry = await store.append(timeline_id, {"kind": kind, "text": text, "from": sender})
        if kind == "text" and text != "miss":
            hits.append((clock.now, f"{timeline_id}#{entry.seq}", sender))
    newest = [name for _, name, _ in sorted(hits, reverse=True)]
    middle = clock.now - 30

    async def pages(query: str, **options: Any) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            page = await store.search(query, scopes, limit=4, cursor=cursor, **options)
            seen += [f"{hit.timeline_id}#{hit.seq}" for hit in page.hits]
            if page.cursor is None:
                return seen
            cursor = page.cursor

    assert await pages("梧桐") == newest
    assert await pages("hit") == newest
    by_bob = [name for _, name, sender in sorted(hits, reverse=True) if sender == "bob"]
    assert await pages("梧", facet="bob") == by_bob
    older = [name for at, name, _ in sorted(hits, reverse=True) if at < middle]
    assert await pages("hit", before=middle) == older


async def test_an_entry_written_with_an_earlier_clock_reading_is_found_in_its_place(
    store_factory: StoreFactory, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Newest-first reads stop at a timeline's entries older than the best hits
    so far, taking seq order as time order: a later seq whose clock reading
    was earlier (a clock stepped back, or a writer that stamped before another
    but committed after it) is stamped with its predecessor's time, so the
    walk does not skip the hit before it."""
    # PostgreSQL: walk both scopes together, one or two entries at a time.
    monkeypatch.setattr(postgres_search_read, "WALK_FIRST", 1)
    monkeypatch.setattr(postgres_search_read, "WALK_FIRST_WINDOW", 1)
    monkeypatch.setattr(postgres_search_read, "WALK_DENSITY", 0)
    monkeypatch.setattr(postgres_search_read, "WALK_LARGEST_WINDOW", 2)
    store = await store_factory(search=CONFIG)
    start = clock.now

    async def at(delay: float, timeline_id: str, text: str) -> None:
        clock.now = start + delay
        await store.append(timeline_id, {"kind": "text", "text": text, "from": "u"})

    for n in range(1, 11):
        await at(n / 1000, "group:b", "hit")
    await at(0.0085, "group:a", "hit")  # group:a#1
    await at(0.0015, "group:a", "miss")  # group:a#2: the clock read 7 ms earlier
    for n in range(4):
        await at(0.02 + n / 100, "group:a", "miss")
    expected = ["group:b#10", "group:b#9", "group:a#1"] + [f"group:b#{n}" for n in range(8, 0, -1)]
    assert await every_page(store, "hit") == expected
    second = await store.get("group:a", 2)
    assert second is not None and second.created_at == start + 0.0085


def test_only_ids_of_the_form_kind_colon_rest_are_indexed() -> None:
    assert CONFIG.indexes("group:a") and CONFIG.indexes("dm:x:y")
    assert not CONFIG.indexes("group") and not CONFIG.indexes("groups:a")
    assert CONFIG.meta_document("user:ann", {"display_name": "Ann"}) == "ann\nann"
    assert CONFIG.meta_document("user", {"display_name": "Ann"}) is None


async def test_relevance_order(indexed: Store) -> None:
    await indexed.append("group:a", {"kind": "text", "text": "群 群 群", "from": "u"})
    await indexed.append(
        "group:a", {"kind": "text", "text": "也是一个群" + "。" * 300, "from": "u"}
    )
    page = await indexed.search("群", ALL, order="relevance")
    assert [f"{h.timeline_id}#{h.seq}" for h in page.hits][0] == "group:a#3"
    assert len(page.hits) == 3


async def test_what_is_not_indexed(indexed: Store) -> None:
    await indexed.append("inbox:alice", {"kind": "text", "text": "独角兽", "from": "u"})
    await indexed.append("group:a", {"kind": "edit", "text": "独角兽", "from": "u"})
    await indexed.append("group:a", {"kind": "text", "data": {"text": "独角兽"}})
    scopes = [*ALL, Scope("inbox:alice")]
    assert await found(indexed, "独角兽", scopes) == []


async def test_update_reindexes_and_erasing_the_text_unindexes(indexed: Store) -> None:
    await indexed.update("group:a", 1, {"text": "白杨树"})
    assert await found(indexed, "梧桐") == []
    assert await found(indexed, "白杨") == ["group:a#1"]
    await indexed.update("group:a", 1, {"text": "", "recalled": True})
    assert await found(indexed, "白杨") == []
    assert await found(indexed, "树") == []


async def test_delete_and_purge_remove_index_rows(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    store = await store_factory(search=CONFIG, retention={"group": DAY})
    await store.append("group:a", {"kind": "text", "text": "旧消息 old", "from": "u"})
    await store.append("group:a", {"kind": "text", "text": "删除 gone", "from": "u"})
    await store.delete("group:a", 2)
    assert await found(store, "gone") == []
    clock.advance(2 * DAY)
    await store.append("group:a", {"kind": "text", "text": "新消息 new", "from": "u"})
    assert await store.purge_expired() == 1
    assert await found(store, "消息") == ["group:a#3"]


async def test_the_index_survives_a_restart(store_factory: StoreFactory, indexed: Store) -> None:
    again = await store_factory.reopen(indexed, search=CONFIG)
    assert await found(again, "梧桐") == ["group:a#1"]


async def test_fanned_out_copies_are_not_indexed(store_factory: StoreFactory) -> None:
    store = await store_factory(search=CONFIG)
    message = {"kind": "text", "text": "大家好", "from": "u"}
    await store.append_many(
        [Append("group:a", message), Append("inbox:u", message, ref=0)] * 1
        + [Append("inbox:v", message, ref=0)]
    )
    page = await store.search("大家", [Scope("group:a"), Scope("inbox:u"), Scope("inbox:v")])
    assert [(h.timeline_id, h.seq) for h in page.hits] == [("group:a", 1)]


HOSTILE = [
    '"',
    '"梧桐',
    "*",
    "梧*",
    "NEAR(梧桐 凤凰)",
    "AND",
    "OR NOT",
    "-梧桐",
    "^梧桐",
    "(梧桐",
    "梧桐)",
    "%",
    "_",
    "'; DROP TABLE entries; --",
    "\\",
    "terms:梧桐",
    "{terms}: x",
    "",
    "   ",
    "梧" * 10_000,
    "a" * 10_000,
    "\x00",
    "\ud800",
    "梧桐 & 凤凰 | !x <-> y:*",
]


@pytest.mark.parametrize("query", HOSTILE)
async def test_hostile_queries_are_text(indexed: Store, query: str) -> None:
    page = await indexed.search(query, ALL)
    for hit in page.hits:
        assert hit.timeline_id in ("group:a", "group:b", "dm:x:y")
    assert await indexed.search_meta("user", query) is not None
    assert await found(indexed, "梧桐") == ["group:a#1"]  # the index is intact


async def test_syntax_characters_around_words_still_match(indexed: Store) -> None:
    assert await found(indexed, '"梧桐"') == ["group:a#1"]
    assert await found(indexed, "(timeline)") == ["group:a#2"]
    assert await found(indexed, "NEAR") == []


async def test_bad_arguments(indexed: Store) -> None:
    with pytest.raises(InvalidInput):
        await indexed.search(5, ALL)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await indexed.search("x", ALL, limit=0)
    with pytest.raises(InvalidInput):
        await indexed.search("x", ALL, order="random")
    with pytest.raises(InvalidInput):
        await indexed.search("x", ALL, cursor="not a cursor")
    with pytest.raises(InvalidInput):
        await indexed.search("x", [Scope("group:a"), Scope("group:a")])


async def test_no_index_configured_finds_nothing(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.append("group:a", {"kind": "text", "text": "梧桐", "from": "u"})
    assert (await store.search("梧桐", [Scope("group:a")])).hits == ()


async def meta_ids(store: Store, kind: str, query: str) -> list[str]:
    return [record_id for record_id, _ in await store.search_meta(kind, query)]


async def test_metadata_search(store_factory: StoreFactory) -> None:
    store = await store_factory(search=CONFIG)
    await store.put_meta("user:alice", {"display_name": "爱丽丝 Alice", "signature": "写代码"})
    await store.put_meta("user:malice", {"display_name": "Mal", "signature": "梧桐"})
    await store.put_meta("user:bob", {"display_name": "Bob", "signature": "IM开发者"})
    await store.put_meta("group:g1", {"name": "梧桐读书会", "description": "open"})
    await store.put_meta("other:alice", {"display_name": "alice"})
    assert await meta_ids(store, "user", "alice") == ["user:alice", "user:malice"]
    assert await meta_ids(store, "user", "LIC") == ["user:alice", "user:malice"]
    assert await meta_ids(store, "user", "丽") == ["user:alice"]
    assert await meta_ids(store, "user", "梧桐") == ["user:malice"]
    assert await meta_ids(store, "user", "im开") == ["user:bob"]
    assert await meta_ids(store, "group", "读书") == ["group:g1"]
    assert await meta_ids(store, "user", "%") == []
    assert await meta_ids(store, "user", "_") == []
    await store.update_meta("user:bob", {"signature": "摸鱼"})
    assert await meta_ids(store, "user", "开发") == []
    assert await meta_ids(store, "user", "摸鱼") == ["user:bob"]
    await store.delete_meta("user:malice")
    assert await meta_ids(store, "user", "alice") == ["user:alice"]
    assert await meta_ids(store, "other", "alice") == []  # kinds not configured


async def test_postgres_rare_term_reads_are_planned_for_their_arguments(pg_database: Any) -> None:
    """The GIN-index read (``SEARCH_SPARSE``) never runs a cached generic plan:
    that plan reads every entry of every scope (see ``fetch_custom_planned``).
    The setting lasts for that statement's transaction only."""
    import asyncpg

    conn = await asyncpg.connect(pg_database.url)
    try:
        show = "SELECT current_setting('plan_cache_mode')"
        rows = await postgres_search_read.fetch_custom_planned(conn, show)
        assert rows[0][0] == "force_custom_plan"
        assert await conn.fetchval(show) == "auto"
    finally:
        await conn.close()
