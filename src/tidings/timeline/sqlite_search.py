"""The search index of the SQLite backend: FTS5, written in the entry's commit.

Tables (migration 3):

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
  staged here instead (one row each) and moved into ``search_docs`` and
  ``search_index`` in two statements once ``STAGED_DOCS`` have gathered
  (inside the commit that reaches the mark).
  Searches read both: staged documents are matched with ``instr`` on their
  space-separated terms, which is exactly an FTS5 phrase match on them.
- ``search_meta (id, body)``: the folded searchable text of metadata records,
  matched with LIKE (metadata is small; a scan of it takes milliseconds).

Searching is in :mod:`.sqlite_search_read`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from . import sqlite_search_read
from .model import Batch, EncodedAppend
from .search import (
    Candidate,
    Phrase,
    Scope,
    SearchConfig,
    like_pattern,
    normalise,
    terms,
)

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


class Document(NamedTuple):
    """What is indexed of an entry: its text, facet, and terms (space separated)."""

    body: str
    facet: str | None
    terms: str


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
        if num is None:
            return
        bounds = (num << SEQ_BITS, (num << SEQ_BITS) | MAX_INDEXED_SEQ, before)
        conn.execute(
            "DELETE FROM search_pending WHERE id BETWEEN ? AND ? AND created_at < ?", bounds
        )
        rows = conn.execute(
            "DELETE FROM search_docs WHERE id BETWEEN ? AND ? AND created_at < ?"
            " RETURNING id, body",
            bounds,
        ).fetchall()
        _unindex(conn, rows)

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
        num = self._num(conn, timeline_id)
        if num is None:  # a read first: an upsert would rewrite the row every time
            (num,) = conn.execute(
                "INSERT INTO search_timelines (id) VALUES (?) RETURNING num", (timeline_id,)
            ).fetchone()
        doc_id = (num << SEQ_BITS) | seq
        conn.execute(
            "INSERT INTO search_pending (id, created_at, facet, body, terms)"
            " VALUES (?, ?, ?, ?, ?)",
            (doc_id, created_at, document.facet, document.body, document.terms),
        )
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


def _merge(conn: sqlite3.Connection) -> None:
    """Move every staged document into ``search_docs`` and the FTS5 index."""
    conn.execute(
        "INSERT INTO search_docs (id, created_at, facet, body)"
        " SELECT id, created_at, facet, body FROM search_pending ORDER BY id"
    )
    conn.execute(
        "INSERT INTO search_index (rowid, terms) SELECT id, terms FROM search_pending ORDER BY id"
    )
    conn.execute("DELETE FROM search_pending")


def _unindex(conn: sqlite3.Connection, rows: Iterable[tuple[int, str]]) -> None:
    """Remove documents deleted from ``search_docs`` from the FTS5 index."""
    for doc_id, body in rows:
        conn.execute(
            "INSERT INTO search_index (search_index, rowid, terms) VALUES ('delete', ?, ?)",
            (doc_id, " ".join(terms(body))),
        )
