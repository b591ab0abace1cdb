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
common table expression), updates in the same transaction, deletes and purges
in the same statement: a message is searchable once its send is acknowledged,
and an index row never outlives its entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from .search import (
    Candidate,
    Phrase,
    Scope,
    SearchConfig,
    like_pattern,
    normalise,
    tsquery,
    tsvector,
)

_NO_SEQ_LIMIT = 2**63 - 1

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
    # New GIN entries wait in a pending list that every search scans; 256 kB
    # (not the default 4 MB) keeps that scan short under a steady stream of
    # sends (measured: 4 MB of pending entries made every search ~140 ms).
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

# Appended to the append statement's common table expressions (see
# postgres._APPEND): the index rows of the indexed items, seqs from the heads.
INDEX_CTE = """, indexed AS (
    INSERT INTO search_entries (timeline_id, seq, created_at, facet, body, terms)
    SELECT x.timeline_id, h.last_seq - x.back, x.created_at, x.facet, x.body, x.terms::tsvector
    FROM unnest($11::text[], $12::bigint[], $13::float8[], $14::text[], $15::text[], $16::text[])
        AS x (timeline_id, back, created_at, facet, body, terms)
    JOIN heads h ON h.id = x.timeline_id
)
"""

# The density probe: how many of the newest entries of a few scopes match.
PROBE = """
SELECT count(*) FILTER (WHERE x.terms @@ $3::tsquery), count(*)
FROM unnest($1::text[]) AS w (timeline_id)
CROSS JOIN LATERAL (
    SELECT e.terms FROM search_entries e
    WHERE e.timeline_id = w.timeline_id ORDER BY e.seq DESC LIMIT $2
) x
"""
# Reading newest first through each scope suits a frequent term; a rare term is
# found through the GIN index instead (all its entries in the scopes, then the
# newest): the probed share of matching entries decides (see SPARSE_DENSITY).
SPARSE_DENSITY = 0.12
PROBE_SCOPES = 3
PROBE_WINDOW = 64

# Columns and filters shared by both search statements ($1-$10 as in
# search_arguments).
_FILTERS = """
        AND ($6::float8 IS NULL OR e.created_at >= $6)
        AND ($7::float8 IS NULL OR e.created_at < $7)
        AND ($8::text IS NULL OR e.facet = $8)
        AND ($9::float8 IS NULL OR e.created_at < $9 OR (e.created_at = $9 AND e.seq < w.tiebreak))
"""
SEARCH_SPARSE = f"""
SELECT e.timeline_id, e.seq, e.created_at, e.facet, e.body
FROM search_entries e
JOIN unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
    AS w (timeline_id, first, last, tiebreak)
    ON e.timeline_id = w.timeline_id AND e.seq BETWEEN w.first AND w.last
WHERE e.terms @@ $5::tsquery AND e.timeline_id = ANY($1::text[]) {_FILTERS}
ORDER BY e.created_at DESC, e.timeline_id DESC, e.seq DESC
LIMIT $10
"""

_SEARCH = f"""
SELECT s.timeline_id, s.seq, s.created_at, s.facet, s.body
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
    AS w (timeline_id, first, last, tiebreak)
CROSS JOIN LATERAL (
    SELECT e.timeline_id, e.seq, e.created_at, e.facet, e.body
    FROM search_entries e
    WHERE e.timeline_id = w.timeline_id AND e.seq BETWEEN w.first AND w.last
        AND e.terms @@ $5::tsquery {_FILTERS}
    ORDER BY e.seq DESC
    LIMIT $10
) s
ORDER BY s.created_at DESC, s.timeline_id DESC, s.seq DESC
LIMIT $10
"""

_SEARCH_META = """
SELECT m.id, m.fields
FROM search_meta s JOIN meta m ON m.id = s.id
WHERE s.id >= $1 AND s.id < $2 AND s.body LIKE $3
ORDER BY strpos(E'\\n' || s.body, E'\\n' || $4) = 0, s.id
LIMIT $5
"""

DELETE_ENTRY = """
WITH unindexed AS (DELETE FROM search_entries WHERE timeline_id = $1 AND seq = $2)
DELETE FROM entries WHERE timeline_id = $1 AND seq = $2
"""
PURGE = """
WITH unindexed AS (
    DELETE FROM search_entries WHERE timeline_id = ANY($1::text[]) AND created_at < $2
)
DELETE FROM entries WHERE timeline_id = ANY($1::text[]) AND created_at < $2
"""
DELETE_META = """
WITH unindexed AS (DELETE FROM search_meta WHERE id = $1)
DELETE FROM meta WHERE id = $1
"""


def index_rows(
    config: SearchConfig,
    items: Sequence[tuple[str, int, float, bytes]],
) -> tuple[list[Any], ...] | None:
    """The arguments of :data:`INDEX_CTE` for ``(timeline_id, back, now, body)``
    items, or None when none of them is indexed."""
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [])
    decoded: dict[bytes, Any] = {}
    for timeline_id, back, now, body in items:
        if not config.indexes(timeline_id):
            continue
        if body not in decoded:
            message = orjson.loads(body)
            decoded[body] = (config.document(message), config.facet_of(message))
        text, facet = decoded[body]
        if text is None:
            continue
        for column, value in zip(
            columns, (timeline_id, back, now, facet, text, tsvector(text)), strict=True
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
    await conn.execute(
        "DELETE FROM search_entries WHERE timeline_id = $1 AND seq = $2", timeline_id, seq
    )
    text = config.document(message)
    if text is not None:
        await conn.execute(
            "INSERT INTO search_entries (timeline_id, seq, created_at, facet, body, terms)"
            " VALUES ($1, $2, $3, $4, $5, $6::tsvector)",
            timeline_id,
            seq,
            created_at,
            config.facet_of(message),
            text,
            tsvector(text),
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


def search_arguments(
    phrases: Sequence[Phrase],
    scopes: Sequence[Scope],
    after: float | None,
    before: float | None,
    facet: str | None,
    cursor: tuple[float, str, int] | None,
    limit: int,
) -> tuple[Any, ...]:
    """The arguments of the search statement."""
    ids, firsts, lasts, ties = [], [], [], []
    for scope in scopes:
        ids.append(scope.timeline_id)
        firsts.append(scope.first)
        lasts.append(_NO_SEQ_LIMIT if scope.last is None else scope.last)
        ties.append(_tiebreak(scope.timeline_id, cursor))
    return (
        ids,
        firsts,
        lasts,
        ties,
        tsquery(phrases),
        after,
        before,
        facet,
        None if cursor is None else cursor[0],
        limit,
    )


def _tiebreak(timeline_id: str, cursor: tuple[float, str, int] | None) -> int:
    """Seqs below this, created at the cursor's time, come after the cursor."""
    if cursor is None or timeline_id < cursor[1]:
        return _NO_SEQ_LIMIT
    if timeline_id > cursor[1]:
        return 0
    return cursor[2]


def candidates(rows: Sequence[Any]) -> list[Candidate]:
    return [Candidate(row[0], row[1], row[2], row[3], row[4]) for row in rows]


SEARCH = _SEARCH
SEARCH_META = _SEARCH_META


def search_meta_arguments(kind: str, query: str, limit: int) -> tuple[Any, ...] | None:
    text = normalise(query)
    if not text:
        return None
    return (kind + ":", kind + ";", like_pattern(text), text, limit)
