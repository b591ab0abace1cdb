"""The search index of the SQLite backend: FTS5, written in the entry's commit.

Tables (migration 3; 7 re-created ``search_pending``):

- ``search_timelines (num, id)`` gives each indexed timeline a number.
- ``search_docs (id, created_at, facet, body)``: one row per indexed entry, its
  id ``num << 32 | seq``, so that the entries of one timeline are one id range
  in seq order. ``body`` is the indexed text (snippets are cut from it).
- ``search_index``: a contentless FTS5 table over the *terms* of ``body``
  (computed by :mod:`tidings.timeline.search`, space separated) with the
  ``ascii`` tokenizer, which splits on ASCII punctuation only and so keeps each
  term whole; ``prefix='1'`` indexes every one-character prefix, which makes a
  one-character query (``群*``) one index lookup. Being contentless, a row is
  removed with FTS5's ``'delete'`` command and the terms it was indexed with,
  recomputed from ``search_docs.body``.
- ``search_pending``: documents not yet in ``search_docs`` and
  ``search_index``, with their terms. FTS5
  writes a new index segment at every commit and merges segments as they pile
  up, which costs more per document the smaller the commits are; a group commit
  of a few dozen sends would pay that on every commit. New documents are
  staged here instead (one row each, in staging order: see
  ``STAGED_IN_ORDER``) and moved into ``search_docs`` and ``search_index``
  in two statements once ``STAGED_DOCS`` have gathered (inside the commit
  that reaches the mark).
  Searches read both: staged documents are matched with ``instr`` on their
  space-separated terms, which is exactly an FTS5 phrase match on them.
- ``search_meta (id, body)``: the folded searchable text of metadata records,
  matched with LIKE (metadata is small; a scan of it takes milliseconds).

Searching is in :mod:`.sqlite_search_read`; :class:`Reindex` rebuilds the
index from the stored entries and records (:meth:`Store.reindex`).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import orjson

from . import sqlite_search_read
from .model import Batch, EncodedAppend
from .reindexing import Key, MetaStep, Rebuilt
from .search import (
    Candidate,
    Phrase,
    Scope,
    SearchConfig,
    like_pattern,
    normalise,
    terms,
)

T = TypeVar("T")

# Seqs fit in the low 32 bits of a document id; entries past seq 4,294,967,295
# of one timeline are not indexed (a conversation of four billion messages).
SEQ_BITS = sqlite_search_read.SEQ_BITS
MAX_INDEXED_SEQ = sqlite_search_read.MAX_INDEXED_SEQ

# Documents staged before they move into the FTS5 index in one batch: large
# enough that the index writes few, large segments (measured: 17 us a document
# in batches of 4,000 against 39 us in batches of 64), small enough that
# matching the staged rows of a timeline by scanning them stays instant.
STAGED_DOCS = 4096

MIGRATION: list[str] = [
    """CREATE TABLE search_timelines (
        num INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE
    )""",
    """CREATE TABLE search_docs (
        id INTEGER PRIMARY KEY,
        created_at REAL NOT NULL,
        facet TEXT,
        body TEXT NOT NULL
    )""",
    """CREATE VIRTUAL TABLE search_index USING fts5 (
        terms, content = '', columnsize = 0, tokenize = 'ascii', prefix = '1'
    )""",
    # The index's terms, to expand a word prefix into the words it matches.
    "CREATE VIRTUAL TABLE search_vocab USING fts5vocab (search_index, 'row')",
    """CREATE TABLE search_pending (
        id INTEGER PRIMARY KEY,
        created_at REAL NOT NULL,
        facet TEXT,
        body TEXT NOT NULL,
        terms TEXT NOT NULL
    )""",
    """CREATE TABLE search_meta (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL
    ) WITHOUT ROWID""",
]


# Migration 4: FTS5 merges 16 segments of a level at a time instead of 4.
# Each posting is then rewritten about half as often as the index grows
# (measured at 400,000 documents in batches of 4,096: 12 us a document
# against 19 us), for a few more segments per query to read (a one-character
# query took the same time).
TUNING: list[str] = [
    "INSERT INTO search_index (search_index, rank) VALUES ('automerge', 16)",
    "INSERT INTO search_index (search_index, rank) VALUES ('crisismerge', 32)",
]
# Migration 6: 8 segments at a time. Each read statement seeks its terms in
# every segment, and a small segment has no index into its posting lists, so
# the seek reads them from their start: at 1,000,000 documents an index of 32
# segments took 0.3-3.7 ms per window read (the later the timeline's number,
# the slower), one of 3 segments 0.06-0.25 ms. Grown to 1,000,000 documents in
# batches of 4,096 (measured twice each): merging 16 at a time costs 21-23 us a
# document and 0.76-1.0 ms a window read, 8 at a time 23-24 us and 0.46-0.64
# ms, 4 at a time 31 us and 0.30 ms.
FEWER_SEGMENTS: list[str] = [
    "INSERT INTO search_index (search_index, rank) VALUES ('automerge', 8)",
]


# Migration 7: staged documents are kept in the order they were staged (a
# rowid table, no key on ``id``). Keyed by document id, the documents of one
# group commit (each of another conversation, so of another id range) landed
# on as many pages of the table, and each such page went to the WAL whole;
# appended in order, they share the table's last page. Searches scan the
# staged rows anyway; deleting one by id scans them too (4,096 rows at most,
# about a millisecond, on an edit or recall, or per conversation purged), and
# a rebuild batch reads them once (``_INTERVAL_STAGED``). Measured through
# ``tidings.im.messaging.send`` on 300,000 stored messages, five alternating
# probes each, the index's overhead on sends: 10-18% against 21-25%.
STAGED_IN_ORDER: list[str] = [
    """CREATE TABLE search_staged (
        id INTEGER NOT NULL,
        created_at REAL NOT NULL,
        facet TEXT,
        body TEXT NOT NULL,
        terms TEXT NOT NULL
    )""",
    "INSERT INTO search_staged SELECT id, created_at, facet, body, terms FROM search_pending"
    " ORDER BY id",
    "DROP TABLE search_pending",
    "ALTER TABLE search_staged RENAME TO search_pending",
]


class Document(NamedTuple):
    """What is indexed of an entry: its text, facet, and terms (space separated)."""

    body: str
    facet: str | None
    terms: str


# Stages a document of a numbered timeline, looking its number up in the same
# statement (one statement a document: the writer thread takes the GIL back
# after each, and waits for it while the event loop runs).
_STAGE = f"""
INSERT INTO search_pending (id, created_at, facet, body, terms)
SELECT (num << {SEQ_BITS}) | ?, ?, ?, ?, ? FROM search_timelines WHERE id = ?
"""
_STAGE_NEW = f"""
INSERT INTO search_pending (id, created_at, facet, body, terms)
VALUES ((? << {SEQ_BITS}) | ?, ?, ?, ?, ?)
"""


class SQLiteSearch:
    """Index writes (run on the writer thread inside the caller's transaction)
    and searches (run on a reader thread)."""

    def __init__(self, config: SearchConfig) -> None:
        self.config = config
        # Owned by the writer thread: about how many documents are staged (it
        # drifts when a commit rolls back, which only moves the next merge).
        self._staged = 0

    # -- writes ----------------------------------------------------------------

    def prepare(self, items: Sequence[EncodedAppend]) -> list[Document | None]:
        """The index documents of an append's items (None: not indexed).

        Run by the caller before its write is queued, so that the single writer
        thread does not spend its time decoding and splitting text.
        """
        found: list[Document | None] = []
        seen: dict[bytes, Document | None] = {}
        for item in items:
            if not self.config.indexes(item.timeline_id):
                found.append(None)
                continue
            if item.body not in seen:
                seen[item.body] = self._document(orjson.loads(item.body))
            found.append(seen[item.body])
        return found

    def appended(
        self, conn: sqlite3.Connection, batch: Batch, documents: Sequence[Document | None]
    ) -> Batch:
        if batch.replayed:
            return batch
        for entry, document in zip(batch.entries, documents, strict=True):
            if document is not None:
                self._add(conn, entry.timeline_id, entry.seq, entry.created_at, document)
        return batch

    def updated(
        self,
        conn: sqlite3.Connection,
        timeline_id: str,
        seq: int,
        message: Mapping[str, Any],
        created_at: float,
    ) -> None:
        if self.config.indexes(timeline_id):
            self.deleted(conn, timeline_id, seq)
            document = self._document(message)
            if document is not None:
                self._add(conn, timeline_id, seq, created_at, document)

    def deleted(self, conn: sqlite3.Connection, timeline_id: str, seq: int) -> None:
        num = self._num(conn, timeline_id) if self.config.indexes(timeline_id) else None
        if num is None or seq > MAX_INDEXED_SEQ:
            return
        doc_id = (num << SEQ_BITS) | seq
        if conn.execute("DELETE FROM search_pending WHERE id = ?", (doc_id,)).rowcount:
            return
        rows = conn.execute(
            "DELETE FROM search_docs WHERE id = ? RETURNING id, body", (doc_id,)
        ).fetchall()
        _unindex(conn, rows)

    def purged(self, conn: sqlite3.Connection, timeline_id: str, before: float) -> None:
        num = self._num(conn, timeline_id) if self.config.indexes(timeline_id) else None
        if num is not None:
            _drop_timeline(conn, num, before)

    def meta_put(self, conn: sqlite3.Connection, record_id: str, fields: Mapping[str, Any]) -> None:
        body = self.config.meta_document(record_id, fields)
        if body is not None:
            conn.execute(
                "INSERT INTO search_meta (id, body) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                (record_id, body),
            )

    def meta_deleted(self, conn: sqlite3.Connection, record_id: str) -> None:
        if record_id.partition(":")[0] in self.config.meta:
            conn.execute("DELETE FROM search_meta WHERE id = ?", (record_id,))

    def _document(self, message: Mapping[str, Any]) -> Document | None:
        body = self.config.document(message)
        if body is None:
            return None
        return Document(body, self.config.facet_of(message), " ".join(terms(body)))

    def _add(
        self,
        conn: sqlite3.Connection,
        timeline_id: str,
        seq: int,
        created_at: float,
        document: Document,
    ) -> None:
        if seq > MAX_INDEXED_SEQ:
            return
        values = (seq, created_at, document.facet, document.body, document.terms)
        if not conn.execute(_STAGE, (*values, timeline_id)).rowcount:
            conn.execute(_STAGE_NEW, (_new_num(conn, timeline_id), *values))
        self._staged += 1
        if self._staged >= STAGED_DOCS:
            _merge(conn)
            self._staged = 0

    @staticmethod
    def _num(conn: sqlite3.Connection, timeline_id: str) -> int | None:
        row = conn.execute(
            "SELECT num FROM search_timelines WHERE id = ?", (timeline_id,)
        ).fetchone()
        return None if row is None else int(row[0])

    # -- reads -----------------------------------------------------------------

    def search(
        self,
        conn: sqlite3.Connection,
        phrases: Sequence[Phrase],
        scopes: Sequence[Scope],
        **options: Any,
    ) -> list[Candidate]:
        """The newest matches over ``scopes``, newest first (see
        :func:`.sqlite_search_read.search` for the options)."""
        return sqlite_search_read.search(conn, phrases, scopes, **options)

    def search_meta(
        self, conn: sqlite3.Connection, kind: str, query: str, limit: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """Records ``kind:*`` whose indexed text contains ``query``: those with
        a field starting with it first, then by id."""
        text = normalise(query)
        if not text:
            return []
        rows = conn.execute(
            "SELECT m.id, m.fields FROM search_meta s JOIN meta m ON m.id = s.id"
            " WHERE s.id >= :low AND s.id < :high AND s.body LIKE :pattern ESCAPE '\\'"
            " ORDER BY instr(char(10) || s.body, char(10) || :text) = 0, s.id LIMIT :limit",
            {
                "low": kind + ":",
                "high": kind + ";",
                "pattern": like_pattern(text),
                "text": text,
                "limit": limit,
            },
        ).fetchall()
        return [(row[0], orjson.loads(row[1])) for row in rows]


# The staged rows to merge: the last one staged of each id. No write stages an
# id twice (seqs are not reused, an update unstages first), and the table has
# no key to refuse it (migration 7); were one staged twice anyway, the merge
# keeps its last version instead of failing, and with it every later merge.
_TO_MERGE = (
    "FROM search_pending WHERE rowid IN (SELECT max(rowid) FROM search_pending GROUP BY id)"
    " ORDER BY id"
)


def _merge(conn: sqlite3.Connection) -> None:
    """Move every staged document into ``search_docs`` and the FTS5 index."""
    conn.execute(
        f"INSERT INTO search_docs (id, created_at, facet, body) SELECT id, created_at, facet, body"
        f" {_TO_MERGE}"
    )
    conn.execute(f"INSERT INTO search_index (rowid, terms) SELECT id, terms {_TO_MERGE}")
    conn.execute("DELETE FROM search_pending")


def _new_num(conn: sqlite3.Connection, timeline_id: str) -> int:
    """Number a timeline that has none yet (callers look it up first: an upsert
    would rewrite the row every time)."""
    (num,) = conn.execute(
        "INSERT INTO search_timelines (id) VALUES (?) RETURNING num", (timeline_id,)
    ).fetchone()
    return int(num)


def _drop_timeline(conn: sqlite3.Connection, num: int, before: float | None = None) -> int:
    """Remove the documents of timeline ``num`` (those created before
    ``before``, when given), staged or indexed; returns how many."""
    args = {"low": num << SEQ_BITS, "high": (num << SEQ_BITS) | MAX_INDEXED_SEQ, "before": before}
    older = "" if before is None else " AND created_at < :before"
    removed = conn.execute(
        f"DELETE FROM search_pending WHERE id BETWEEN :low AND :high{older}", args
    ).rowcount
    rows = conn.execute(
        f"DELETE FROM search_docs WHERE id BETWEEN :low AND :high{older} RETURNING id, body", args
    ).fetchall()
    _unindex(conn, rows)
    return int(removed) + len(rows)


def _unindex(conn: sqlite3.Connection, rows: Iterable[tuple[int, str]]) -> None:
    """Remove documents deleted from ``search_docs`` from the FTS5 index."""
    for doc_id, body in rows:
        conn.execute(
            "INSERT INTO search_index (search_index, rowid, terms) VALUES ('delete', ?, ?)",
            (doc_id, " ".join(terms(body))),
        )


# -- rebuilding the index (Store.reindex) ------------------------------------------

# The entries of a key interval ``(:t0, :s0) < key <= (:t1, :s1)`` in key order,
# from both entry tables (see tidings.timeline.sqlite: an entry is in exactly
# one), merged by SQLite from two primary-key range scans.
_INTERVAL = (
    " UNION ALL ".join(
        "SELECT e.timeline_id, e.seq, e.created_at, b.data"
        f" FROM {table} e JOIN bodies b ON b.id = e.body_id"
        " WHERE (e.timeline_id, e.seq) > (:t0, :s0) AND (e.timeline_id, e.seq) <= (:t1, :s1)"
        for table in ("recent", "entries")
    )
    + " ORDER BY 1, 2"
)
# The index rows (staged or not) of the interval: each indexed timeline of it
# is one document id range, read through ``search_docs``' key.
_IN_INTERVAL = """d.id BETWEEN (t.num << 32) + (CASE WHEN t.id = :t0 THEN :low ELSE 1 END)
        AND (t.num << 32) + (CASE WHEN t.id = :t1 THEN :high ELSE :max END)
    AND t.id >= :t0 AND t.id <= :t1"""
_INTERVAL_DOCS = f"""
SELECT d.id, d.created_at, d.facet, d.body FROM search_timelines t JOIN search_docs d
    ON {_IN_INTERVAL}
"""
# ``search_pending`` has no key on ``id``: it is read once, each row's timeline
# looked up by number (``CROSS JOIN`` keeps that order), not once per timeline.
_INTERVAL_STAGED = f"""
SELECT d.id, d.created_at, d.facet, d.body, d.terms
FROM search_pending d CROSS JOIN search_timelines t ON t.num = d.id >> 32
WHERE {_IN_INTERVAL}
"""
# Timelines whose index rows are dropped per write transaction.
DROP_TIMELINES = 100

# A write job run on the backend's writer thread, and a read on a reader.
_Run = Callable[[Callable[[sqlite3.Connection], T]], Awaitable[T]]


class Reindex:
    """The SQLite steps of :func:`.reindexing.run`.

    A batch reads its entries on a reader thread and computes their documents
    there (no lock held), then runs one write job: the writer thread holds
    the database's write lock for its transaction, so no other write, of this
    process or another, interleaves with it. The job reads the interval again,
    recomputes the documents of entries that changed since, and compares them
    with the interval's rows in ``search_pending`` and ``search_docs``: a row
    that differs or has no indexed entry any more is removed (a staged row by
    id; an FTS5 row with the ``'delete'`` command and the terms of its
    ``body``), and the documents missing are written to ``search_docs`` and
    ``search_index`` directly (the batch is large enough to make a good FTS5
    segment). Rows already right are left alone.

    Removing an FTS5 row takes the terms it was indexed with, recomputed from
    its ``body`` by the current term rules. That is exact for rows written by
    these rules; a row written by other rules (an older Tidings) cannot be
    removed one by one. ``full`` therefore first empties the whole index in
    one transaction (FTS5's ``'delete-all'`` with ``search_docs`` and
    ``search_pending``, all rows at once, so no row is left without its
    postings or postings without a row); every row after that is written by
    these rules, and the batches put every entry back. Searches miss the
    timelines not yet rebuilt until the rebuild reaches them.
    """

    def __init__(self, search: SQLiteSearch, read: _Run[Any], write: _Run[Any]) -> None:
        self.search = search
        self.read = read
        self.write = write

    async def empty(self) -> int:
        def job(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO search_index (search_index) VALUES ('delete-all')")
            removed = conn.execute("DELETE FROM search_docs").rowcount
            removed += conn.execute("DELETE FROM search_pending").rowcount
            self.search._staged = 0
            return int(removed)

        result: int = await self.write(job)
        return result

    async def entries(self, start: Key, stop: Key, limit: int) -> Rebuilt:
        def read(conn: sqlite3.Connection) -> tuple[dict[Key, _Known], Key]:
            statement = _INTERVAL + " LIMIT :limit"
            rows = conn.execute(statement, _bounds(start, stop) | {"limit": limit}).fetchall()
            prepared = {(row[0], row[1]): (row[3], self._document(row[3])) for row in rows}
            return prepared, ((rows[-1][0], rows[-1][1]) if len(rows) == limit else stop)

        prepared, end = await self.read(read)
        result: Rebuilt = await self.write(lambda conn: self._rebuild(conn, start, end, prepared))
        return result

    def _document(self, data: bytes) -> Document | None:
        return self.search._document(orjson.loads(data))

    def _rebuild(
        self, conn: sqlite3.Connection, start: Key, end: Key, prepared: dict[Key, _Known]
    ) -> Rebuilt:
        bounds = _bounds(start, end)
        timelines: list[str] = []
        wanted: dict[Key, tuple[float, Document]] = {}
        for timeline_id, seq, created_at, data in conn.execute(_INTERVAL, bounds):
            if not timelines or timelines[-1] != timeline_id:
                timelines.append(timeline_id)
            known = prepared.get((timeline_id, seq))
            document = known[1] if known is not None and known[0] == data else self._document(data)
            if document is not None and seq <= MAX_INDEXED_SEQ:
                wanted[(timeline_id, seq)] = (created_at, document)
        nums = dict(
            conn.execute(
                "SELECT num, id FROM search_timelines WHERE id >= ? AND id <= ?", (start[0], end[0])
            ).fetchall()
        )
        ranges = bounds | {
            "low": min(start[1] + 1, MAX_INDEXED_SEQ + 1),
            "high": min(end[1], MAX_INDEXED_SEQ),
            "max": MAX_INDEXED_SEQ,
        }
        kept: set[Key] = set()
        changed: set[Key] = set()
        stale_docs: list[tuple[int, str]] = []
        for doc_id, created_at, facet, body in conn.execute(_INTERVAL_DOCS, ranges).fetchall():
            key = (nums[doc_id >> SEQ_BITS], doc_id & MAX_INDEXED_SEQ)
            want = wanted.get(key)
            if want is not None and want[0] == created_at and want[1][:2] == (body, facet):
                kept.add(key)
            else:
                stale_docs.append((doc_id, body))
                changed.add(key)
        stale_staged: list[tuple[int]] = []
        for doc_id, created_at, facet, body, staged in conn.execute(
            _INTERVAL_STAGED, ranges
        ).fetchall():
            key = (nums[doc_id >> SEQ_BITS], doc_id & MAX_INDEXED_SEQ)
            want = wanted.get(key)
            # A staged row holds its terms: it is kept only if they are the same.
            if want is not None and key not in kept and want == (created_at, (body, facet, staged)):
                kept.add(key)
            else:
                stale_staged.append((doc_id,))
                changed.add(key)
        conn.executemany("DELETE FROM search_pending WHERE id = ?", stale_staged)
        conn.executemany("DELETE FROM search_docs WHERE id = ?", [(d,) for d, _ in stale_docs])
        _unindex(conn, stale_docs)
        added = self._add_all(conn, {k: v for k, v in wanted.items() if k not in kept}, nums)
        changed.update(added)
        return Rebuilt(tuple(timelines), len(wanted), len(changed), end)

    @staticmethod
    def _add_all(
        conn: sqlite3.Connection,
        documents: dict[Key, tuple[float, Document]],
        nums: dict[int, str],
    ) -> list[Key]:
        """Write documents straight into ``search_docs`` and the FTS5 index."""
        by_id = {timeline_id: num for num, timeline_id in nums.items()}
        rows = []
        for (timeline_id, seq), (created_at, document) in documents.items():
            num = by_id.get(timeline_id)
            if num is None:
                num = by_id[timeline_id] = _new_num(conn, timeline_id)
            rows.append(((num << SEQ_BITS) | seq, created_at, document))
        rows.sort(key=lambda row: row[0])
        conn.executemany(
            "INSERT INTO search_docs (id, created_at, facet, body) VALUES (?, ?, ?, ?)",
            [(doc_id, at, document.facet, document.body) for doc_id, at, document in rows],
        )
        conn.executemany(
            "INSERT INTO search_index (rowid, terms) VALUES (?, ?)",
            [(doc_id, document.terms) for doc_id, _, document in rows],
        )
        return list(documents)

    async def drop_entries(self, low: str, high: str | None) -> int:
        bound = "" if high is None else " AND id < :high"
        select = (
            f"SELECT id, num FROM search_timelines WHERE id >= :low AND id > :after{bound}"
            " ORDER BY id LIMIT :limit"
        )

        def job(conn: sqlite3.Connection, after: str) -> tuple[int, str | None]:
            args = {"low": low, "high": high, "after": after, "limit": DROP_TIMELINES}
            found = conn.execute(select, args).fetchall()
            removed = sum(_drop_timeline(conn, num) for _, num in found)
            return removed, (found[-1][0] if len(found) == DROP_TIMELINES else None)

        total = 0
        position: str | None = ""
        while position is not None:
            removed, position = await self.write(functools.partial(job, after=position))
            total += removed
        return total

    async def meta(self, low: str, after: str, high: str, limit: int) -> MetaStep:
        config = self.search.config

        def job(conn: sqlite3.Connection) -> MetaStep:
            rows = conn.execute(
                "SELECT id, fields FROM meta WHERE id >= ? AND id > ? AND id < ?"
                " ORDER BY id LIMIT ?",
                (low, after, high, limit),
            ).fetchall()
            end = rows[-1][0] if len(rows) == limit else None
            wanted = {}
            for record_id, fields in rows:
                body = config.meta_document(record_id, orjson.loads(fields))
                if body is not None:
                    wanted[record_id] = body
            bound = "id < :high" if end is None else "id <= :end"
            present = dict(
                conn.execute(
                    "SELECT id, body FROM search_meta"
                    f" WHERE id >= :low AND id > :after AND {bound}",
                    {"low": low, "after": after, "high": high, "end": end},
                ).fetchall()
            )
            stale = [(i,) for i in present if i not in wanted]
            changed = [(i, body) for i, body in wanted.items() if present.get(i) != body]
            conn.executemany("DELETE FROM search_meta WHERE id = ?", stale)
            conn.executemany(
                "INSERT INTO search_meta (id, body) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                changed,
            )
            return len(wanted), len(stale) + len(changed), end

        result: MetaStep = await self.write(job)
        return result

    async def drop_meta(self, low: str, high: str | None) -> int:
        bound = "" if high is None else " AND id < ?"
        args = (low,) if high is None else (low, high)

        def job(conn: sqlite3.Connection) -> int:
            return int(conn.execute(f"DELETE FROM search_meta WHERE id >= ?{bound}", args).rowcount)

        result: int = await self.write(job)
        return result


# An entry as a batch first read it: its stored bytes and its document.
_Known = tuple[bytes, Document | None]


def _bounds(start: Key, end: Key) -> dict[str, Any]:
    return {"t0": start[0], "s0": start[1], "t1": end[0], "s1": end[1]}
