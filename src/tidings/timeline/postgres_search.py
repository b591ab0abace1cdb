"""The search index of the PostgreSQL backend, written in the entry's statement.

Tables (migration 2):

- ``search_entries (timeline_id, seq, created_at, facet, body, terms)``, keyed
  like ``entries`` by ``(timeline_id, seq)`` (so it shards with them), with a
  GIN index on ``terms``: a ``tsvector`` built from the same terms as the SQLite
  index (:func:`tidings.timeline.search.tsvector`, never ``to_tsvector``, so no
  text search configuration or locale is involved), each CJK character also
  indexed alone at its bigram's position. Queries are ``tsquery`` phrases.
- ``search_meta (id, body)``: the folded searchable text of metadata records,
  with a ``pg_trgm`` GIN index for ``LIKE '%…%'`` (queries of three characters
  or more use it; shorter ones scan the table, which holds users and groups only).

Appends write the index rows in the same statement as the entries (one more
common table expression), updates, deletes and purges in the same transaction:
a message is searchable once its send is acknowledged, and an index row never
outlives its entry. :class:`Reindex` rebuilds the index from the stored
entries and records (:meth:`Store.reindex`). Searching is in
:mod:`.postgres_search_read`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import asyncpg
import orjson

from .postgres_search_read import Fetch
from .reindexing import Key, MetaStep, Rebuilt
from .search import (
    SearchConfig,
    tsvector,
)

T = TypeVar("T")

MIGRATION: list[str] = [
    """CREATE TABLE search_entries (
        timeline_id text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        created_at double precision NOT NULL,
        facet text,
        body text NOT NULL,
        terms tsvector NOT NULL,
        PRIMARY KEY (timeline_id, seq)
    )""",
    # The pending list's size is set by PENDING_LIST_MIGRATION (4 MB).
    "CREATE INDEX search_entries_terms ON search_entries USING gin (terms)"
    " WITH (gin_pending_list_limit = 256)",
    # pg_trgm ships with PostgreSQL (contrib) and is a trusted extension: the
    # database owner may create it.
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    """CREATE TABLE search_meta (
        id text COLLATE "C" PRIMARY KEY,
        body text NOT NULL
    )""",
    "CREATE INDEX search_meta_body ON search_meta USING gin (body gin_trgm_ops)",
]

# New GIN entries wait in a pending list that a GIN search scans whole, and
# are moved into the index's trees in one pass (each term's postings merged
# once) when the list outgrows this limit. The larger the list, the fewer times
# each term is rewritten per message: measured at 200,000 messages, indexing a
# message costs 56-65 us of server time and 6.1 kB of WAL with 256 kB (the
# limit migration 2 set), 13-30 us and 1.9 kB with 4 MB (PostgreSQL's default).
# A search of a rare term (the only kind that reads the GIN index, see
# WALK_DENSITY) scanning a list of 8,000 messages took 3-6 ms more.
PENDING_LIST_KB = 4096
PENDING_LIST_MIGRATION = [
    f"ALTER INDEX search_entries_terms SET (gin_pending_list_limit = {PENDING_LIST_KB})"
]

# The statement that outgrows the pending list merges it, and takes a few
# hundred milliseconds longer (so do the appends queued behind it). A backend
# that has written this many index rows since its last merge merges the list
# itself, in the background (``gin_clean_pending_list``; an insert that finds a
# merge under way does not wait for it), before a list of about 10,000 messages
# fills. Measured on 1,000,000 messages, 30,000 appends by 16 writers, twice:
# the slowest append 37-41 ms against 169-186 ms, none over 100 ms against
# 26-27, p99.9 14-15 ms against 29-32, p99 5.8-7.0 ms against 4.3-5.0 (the
# merge runs beside the appends), the same appends per second. Merging every
# 4,000 rows cost 7-11% of them. Each process counts its own rows, and merges
# at its first indexed append what earlier processes left: where several
# write, the list may still fill first, and the append that fills it merges
# it, as without this.
MERGE_PENDING_AFTER = 7_000
MERGE_PENDING = "SELECT gin_clean_pending_list('search_entries_terms'::regclass)"

# Appended to the append statement's common table expressions (see
# postgres._APPEND): the index rows of the indexed items, seqs from the heads.
INDEX_CTE = """, indexed AS (
    INSERT INTO search_entries (timeline_id, seq, created_at, facet, body, terms)
    SELECT x.timeline_id, h.last_seq - x.back, greatest(x.created_at, h.prev_at), x.facet, x.body,
        x.terms::tsvector
    FROM unnest($12::text[], $13::bigint[], $14::float8[], $15::text[], $16::text[], $17::text[])
        AS x (timeline_id, back, created_at, facet, body, terms)
    JOIN heads h ON h.id = x.timeline_id
)
"""

# Deleting an entry and its index row takes two statements, the entry first:
# the second one's snapshot is taken after the entry's row lock was granted, so
# it sees an index row written by whoever held that lock (an update, a
# rebuild). One ``WITH … DELETE`` statement would look for index rows in a
# snapshot taken before waiting for the lock, and leave such a row behind.
_DELETE_ENTRY = "DELETE FROM entries WHERE timeline_id = $1 AND seq = $2"
_UNINDEX_ENTRY = "DELETE FROM search_entries WHERE timeline_id = $1 AND seq = $2"
_PURGE = "DELETE FROM entries WHERE timeline_id = ANY($1::text[]) AND created_at < $2"
_UNINDEX_PURGED = (
    "DELETE FROM search_entries WHERE timeline_id = ANY($1::text[]) AND created_at < $2"
)


async def delete_entry(conn: Any, timeline_id: str, seq: int) -> None:
    """Delete an entry and its index row (see ``_DELETE_ENTRY``)."""
    async with conn.transaction():
        await conn.execute(_DELETE_ENTRY, timeline_id, seq)
        await conn.execute(_UNINDEX_ENTRY, timeline_id, seq)


async def purge(conn: Any, timeline_ids: Sequence[str], before: float) -> str:
    """Delete the entries created before ``before`` and their index rows;
    returns the status of the entries' delete."""
    async with conn.transaction():
        status: str = await conn.execute(_PURGE, timeline_ids, before)
        await conn.execute(_UNINDEX_PURGED, timeline_ids, before)
    return status


async def delete_meta(conn: Any, record_id: str) -> None:
    """Delete a metadata record and its searchable text (as ``delete_entry``)."""
    async with conn.transaction():
        await conn.execute("DELETE FROM meta WHERE id = $1", record_id)
        await conn.execute("DELETE FROM search_meta WHERE id = $1", record_id)


# What is indexed of a message: (text, facet, tsvector text), or None.
IndexRow = tuple[str, str | None, str] | None


def index_row(config: SearchConfig, message: Mapping[str, Any]) -> IndexRow:
    """The index row of a message of an indexed timeline."""
    text = config.document(message)
    if text is None:
        return None
    return text, config.facet_of(message), tsvector(text)


def index_rows(
    config: SearchConfig,
    items: Sequence[tuple[str, int, float, bytes]],
) -> tuple[list[Any], ...] | None:
    """The arguments of :data:`INDEX_CTE` for ``(timeline_id, back, now, body)``
    items, or None when none of them is indexed."""
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [])
    rows: dict[bytes, IndexRow] = {}
    for timeline_id, back, now, body in items:
        if not config.indexes(timeline_id):
            continue
        if body not in rows:
            rows[body] = index_row(config, orjson.loads(body))
        row = rows[body]
        if row is None:
            continue
        text, facet, terms = row
        for column, value in zip(
            columns, (timeline_id, back, now, facet, text, terms), strict=True
        ):
            column.append(value)
    return columns if columns[0] else None


async def reindex(
    conn: Any,
    config: SearchConfig,
    timeline_id: str,
    seq: int,
    message: Mapping[str, Any],
    created_at: float,
) -> None:
    """Replace an entry's index row after an update (in the update's transaction)."""
    if not config.indexes(timeline_id):
        return
    await conn.execute(_UNINDEX_ENTRY, timeline_id, seq)
    row = index_row(config, message)
    if row is not None:
        text, facet, terms = row
        await conn.execute(
            "INSERT INTO search_entries (timeline_id, seq, created_at, facet, body, terms)"
            " VALUES ($1, $2, $3, $4, $5, $6::tsvector)",
            timeline_id,
            seq,
            created_at,
            facet,
            text,
            terms,
        )


async def put_meta_text(conn: Any, config: SearchConfig, record_id: str, fields: Any) -> None:
    """Write a metadata record's searchable text (in the write's transaction)."""
    body = config.meta_document(record_id, fields)
    if body is not None:
        await conn.execute(
            "INSERT INTO search_meta (id, body) VALUES ($1, $2)"
            " ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            record_id,
            body,
        )


# -- rebuilding the index (Store.reindex) ------------------------------------------

# The entries of a key interval ``($1, $2) < key <= ($3, $4)`` in key order.
_INTERVAL = """
SELECT timeline_id, seq, created_at, message FROM entries
WHERE (timeline_id, seq) > ($1, $2) AND (timeline_id, seq) <= ($3, $4)
ORDER BY timeline_id, seq
"""
_REINDEX_PAGE = _INTERVAL + " LIMIT $5"
# Locks the interval's entries: an update or delete of one of them waits for
# the rebuild's commit (or the rebuild for theirs, then reads the new state).
_REINDEX_LOCK = _INTERVAL + " FOR UPDATE"
# The interval's index rows that must go: those of entries the rebuild locked
# and does not index ($5, $6), and those whose entry is gone. Rows of entries
# appended after the lock (not locked, present) are their appends' own.
# Lookups are scalar subqueries, one primary-key probe per row: as ``EXISTS``
# or a join, the planner may hash the whole of ``entries`` (or
# ``search_entries``) for every batch.
_REINDEX_DROP = """
DELETE FROM search_entries s
WHERE (s.timeline_id, s.seq) > ($1, $2) AND (s.timeline_id, s.seq) <= ($3, $4)
    AND ((s.timeline_id, s.seq) IN (SELECT * FROM unnest($5::text[], $6::bigint[]))
        OR (SELECT true FROM entries e
            WHERE e.timeline_id = s.timeline_id AND e.seq = s.seq) IS NULL)
"""
# Writes the rows that are missing or differ (terms compared as tsvectors, so
# rows made by other term rules are replaced); rows already right are not
# touched, not even locked.
_REINDEX_WRITE = """
INSERT INTO search_entries AS s (timeline_id, seq, created_at, facet, body, terms)
SELECT x.timeline_id, x.seq, x.created_at, x.facet, x.body, x.terms
FROM (
    SELECT x.timeline_id, x.seq, x.created_at, x.facet, x.body, x.terms::tsvector AS terms
    FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::text[], $5::text[], $6::text[])
        AS x (timeline_id, seq, created_at, facet, body, terms)
) x
WHERE (
    SELECT (o.created_at, o.facet, o.body, o.terms)
        IS NOT DISTINCT FROM (x.created_at, x.facet, x.body, x.terms)
    FROM search_entries o WHERE o.timeline_id = x.timeline_id AND o.seq = x.seq
) IS NOT TRUE
ON CONFLICT (timeline_id, seq) DO UPDATE SET created_at = excluded.created_at,
    facet = excluded.facet, body = excluded.body, terms = excluded.terms
"""
_META_LOCK = """
SELECT id, fields FROM meta WHERE id >= $1 AND id > $2 AND id < $3
ORDER BY id LIMIT $4 FOR UPDATE
"""
_META_DROP = """
DELETE FROM search_meta s
WHERE s.id >= $1 AND s.id > $2 AND s.id < $3 AND ($4::text IS NULL OR s.id <= $4)
    AND (s.id = ANY($5::text[]) OR (SELECT true FROM meta m WHERE m.id = s.id) IS NULL)
"""
_META_WRITE = """
INSERT INTO search_meta AS s (id, body)
SELECT x.id, x.body FROM unnest($1::text[], $2::text[]) AS x (id, body)
WHERE (SELECT o.body = x.body FROM search_meta o WHERE o.id = x.id) IS NOT TRUE
ON CONFLICT (id) DO UPDATE SET body = excluded.body
"""
# Deadlocks (with a purge deleting the same entries in another order) roll the
# batch back; it is then run again.
REINDEX_ATTEMPTS = 3


class Reindex:
    """The PostgreSQL steps of :func:`.reindexing.run`.

    A batch reads its entries first (no lock), turns them into index rows,
    then in one transaction locks the interval's entries (``FOR UPDATE``,
    in key order), recomputes the rows of entries that changed since, deletes
    the rows that must go and writes those missing or different. Updates and
    deletes of the interval's entries wait for its commit, or it waits for
    theirs and reads their result; appends take new seqs, so their rows are
    not the batch's to touch. Rows are removed by key, whatever terms they
    hold, so ``full`` has nothing to add here: a row made by other term rules
    differs from its rebuilt row and is replaced.

    Args:
        config: what is indexed.
        connection: the backend's pooled connection (an async context manager).
        fetch: runs a read statement and returns its rows.
    """

    def __init__(
        self,
        config: SearchConfig,
        connection: Callable[[], AbstractAsyncContextManager[Any]],
        fetch: Fetch,
    ) -> None:
        self.config = config
        self.connection = connection
        self.fetch = fetch

    def _row(self, message: bytes) -> IndexRow:
        return index_row(self.config, orjson.loads(message))

    async def _transaction(self, work: Callable[[Any], Awaitable[T]]) -> T:
        async with self.connection() as conn:
            for attempt in range(1, REINDEX_ATTEMPTS + 1):
                try:
                    async with conn.transaction():
                        return await work(conn)
                except asyncpg.TransactionRollbackError:
                    if attempt == REINDEX_ATTEMPTS:
                        raise
        raise AssertionError("unreachable")

    async def empty(self) -> int:
        return 0  # rows are replaced by key: see the class docstring

    async def entries(self, start: Key, stop: Key, limit: int) -> Rebuilt:
        rows = await self.fetch(_REINDEX_PAGE, *start, *stop, limit)
        prepared = {(row[0], row[1]): (row[3], self._row(row[3])) for row in rows}
        end = (rows[-1][0], rows[-1][1]) if len(rows) == limit else stop

        async def work(conn: Any) -> Rebuilt:
            timelines: list[str] = []
            unindexed: tuple[list[str], list[int]] = ([], [])
            written: tuple[list[Any], ...] = ([], [], [], [], [], [])
            for timeline_id, seq, created_at, message in await conn.fetch(
                _REINDEX_LOCK, *start, *end
            ):
                if not timelines or timelines[-1] != timeline_id:
                    timelines.append(timeline_id)
                known = prepared.get((timeline_id, seq))
                row = known[1] if known is not None and known[0] == message else self._row(message)
                if row is None:
                    unindexed[0].append(timeline_id)
                    unindexed[1].append(seq)
                    continue
                text, facet, terms = row
                values = (timeline_id, seq, created_at, facet, text, terms)
                for column, value in zip(written, values, strict=True):
                    column.append(value)
            dropped = await conn.execute(_REINDEX_DROP, *start, *end, *unindexed)
            added = await conn.execute(_REINDEX_WRITE, *written)
            return Rebuilt(
                tuple(timelines), len(written[0]), row_count(dropped) + row_count(added), end
            )

        return await self._transaction(work)

    async def drop_entries(self, low: str, high: str | None) -> int:
        bound = "" if high is None else " AND timeline_id < $3"
        find = (
            "SELECT timeline_id FROM search_entries WHERE timeline_id >= $1"
            f" AND timeline_id > $2{bound} ORDER BY timeline_id LIMIT 1"
        )
        removed = 0
        after = ""
        while True:
            rows = await self.fetch(find, low, after, *([] if high is None else [high]))
            if not rows:
                return removed
            after = rows[0][0]
            async with self.connection() as conn:
                removed += row_count(
                    await conn.execute("DELETE FROM search_entries WHERE timeline_id = $1", after)
                )

    async def meta(self, low: str, after: str, high: str, limit: int) -> MetaStep:
        async def work(conn: Any) -> MetaStep:
            rows = await conn.fetch(_META_LOCK, low, after, high, limit)
            end = rows[-1][0] if len(rows) == limit else None
            ids, bodies, unindexed = [], [], []
            for record_id, fields in rows:
                body = self.config.meta_document(record_id, orjson.loads(fields))
                if body is None:
                    unindexed.append(record_id)
                else:
                    ids.append(record_id)
                    bodies.append(body)
            dropped = await conn.execute(_META_DROP, low, after, high, end, unindexed)
            added = await conn.execute(_META_WRITE, ids, bodies)
            return len(ids), row_count(dropped) + row_count(added), end

        return await self._transaction(work)

    async def drop_meta(self, low: str, high: str | None) -> int:
        bound = "" if high is None else " AND id < $2"
        async with self.connection() as conn:
            status = await conn.execute(
                f"DELETE FROM search_meta WHERE id >= $1{bound}",
                low,
                *([] if high is None else [high]),
            )
        return row_count(status)


def row_count(status: str) -> int:
    """The row count of a command status (``DELETE 3``, ``INSERT 0 3``)."""
    return int(status.rsplit(" ", 1)[-1])
