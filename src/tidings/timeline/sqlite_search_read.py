"""Searching the SQLite index (see :mod:`.sqlite_search` for its tables).

FTS5 reads a term's postings in ascending rowid order cheaply (tens of
nanoseconds a row) and in descending order expensively (it walks each posting
list to its end first). A search therefore goes:

1. *Staged* documents (``search_pending``, a few thousand rows) of the scopes
   are matched in one statement with ``instr`` on their terms, which equals
   the FTS5 phrase match.
2. The newest window of the newest scopes is read to estimate how many of the
   scopes' documents match.
3. *Sparse* (at most ``SPARSE_DENSITY`` of them and ``SPARSE_IN_SCOPE`` in
   all): one ascending pass over
   the query's postings keeps the rows of the scopes' timelines
   (``rowid >> 32 IN (…)``, evaluated in SQLite); then the matches'
   documents are read newest first per timeline, in rounds, while a timeline
   may still hold one newer than the ``limit``-th so far.
4. *Dense* (a frequent character, say): the scopes are
   visited newest first (by their newest document), each read from its newest
   seq down in windows of ``WINDOW`` seqs growing eightfold, ascending inside
   a window, until ``limit`` hits are held. The scopes left can then only add
   documents newer than the ``limit``-th hit, a few each: they are read
   without FTS5, all in one statement, and matched on their terms
   (``_newer``). A scope whose newest document is older than the
   ``limit``-th hit cannot contribute; it and every scope after it are
   skipped.

Within a timeline, seq order is time order (the store never stamps a later
seq earlier).

A word prefix of two or more letters (``wor``) is expanded into the indexed
words it starts (``world``, ``words``: at most ``EXPANSIONS``, read from the
``search_vocab`` table) and matched as exact terms, which FTS5 seeks by rowid
instead of gathering every posting of every such word on each statement.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .search import Candidate, Phrase, Scope, fts5_query, is_unspaced, term_needle, terms

SEQ_BITS = 32
MAX_INDEXED_SEQ = (1 << SEQ_BITS) - 1
# A query expected to match at most this many documents of the scopes is
# read in one pass over its postings (~0.1 us a posting); one matching more is
# read scope by scope, newest first, where a frequent term stops early.
SPARSE_IN_SCOPE = 20_000
# Above this share of matching documents, reading scope by scope wins: the
# pass over the postings grows with the share, the newest-first visit shrinks
# (measured at 1,000,000 messages: equal at about 13%; 110 ms against 1 ms at 97%).
SPARSE_DENSITY = 0.12
# A sparse read first fetches this many of each scope's newest matches, then
# WINDOW_GROWTH times more of those that may still hold a newer one.
SPARSE_FIRST = 2
# The density probe reads the newest window of this many scopes.
PROBE_SCOPES = 3
# The smallest window of a dense scan, in seqs; it is widened to hold about
# two pages of hits at the probed density, and each next one is eight times wider.
WINDOW = 64
WINDOW_GROWTH = 8
# Once a dense visit holds ``limit`` hits, the remaining scopes are read this
# many newest ids each (then WINDOW_GROWTH times more while a scope's window
# holds nothing older than the last hit), in one statement, and matched
# without FTS5 (see _newer).
TAIL_WINDOW = 8
# A word prefix expands into at most this many words; a shorter prefix that
# starts more words is matched as a prefix (slower: FTS5 gathers them all).
EXPANSIONS = 64

_WINDOW = """
SELECT d.id, d.created_at, d.facet, d.body
FROM search_index i JOIN search_docs d ON d.id = i.rowid
WHERE search_index MATCH :match AND i.rowid BETWEEN :low AND :high {filters}
"""
_FILTERS = {
    "after": "AND d.created_at >= :after",
    "before": "AND d.created_at < :before",
    "facet": "AND d.facet = :facet",
}
_IN_SCOPE = "(SELECT value FROM json_each(:nums))"


@dataclass(frozen=True, slots=True)
class _Range:
    """A scope as document ids: ``low <= id <= high``, all of timeline ``num``."""

    timeline_id: str
    num: int
    low: int
    high: int


@dataclass(slots=True)
class _Query:
    """One search's arguments, shared by its statements."""

    args: dict[str, Any]
    filters: str
    cursor: tuple[float, str, int] | None
    limit: int

    def keep(self, candidate: Candidate) -> bool:
        """The cursor check (its tie-break depends on the timeline, so in Python)."""
        return self.cursor is None or candidate.key() < self.cursor

    def admits(self, candidate: Candidate) -> bool:
        """Every filter (``filters`` and the cursor), checked here."""
        after, before = self.args.get("after"), self.args.get("before")
        return (
            (after is None or candidate.created_at >= after)
            and (before is None or candidate.created_at < before)
            and ("facet" not in self.args or candidate.facet == self.args["facet"])
            and self.keep(candidate)
        )


def search(
    conn: sqlite3.Connection,
    phrases: Sequence[Phrase],
    scopes: Sequence[Scope],
    *,
    after: float | None,
    before: float | None,
    facet: str | None,
    cursor: tuple[float, str, int] | None,
    limit: int,
) -> list[Candidate]:
    """The newest ``limit`` matches over ``scopes``, newest first."""
    ranges = _ranges(conn, scopes)
    if not ranges:
        return []
    args: dict[str, Any] = {"nums": orjson.dumps(list(ranges)).decode()}
    filters = []
    for name, value in (("after", after), ("before", before), ("facet", facet)):
        if value is not None:
            filters.append(_FILTERS[name])
            args[name] = value
    if cursor is not None:  # a bound the cursor check below refines
        filters.append("AND d.created_at <= :cursor_at")
        args["cursor_at"] = cursor[0]
    query = _Query(args, " ".join(filters), cursor, limit)
    found = _staged(conn, phrases, ranges, query)
    match = _match(conn, phrases)
    if match is None:  # a word prefix that starts no indexed word
        return heapq.nlargest(limit, found, key=Candidate.key)
    args["match"] = match
    tops = _newest_first(conn, ranges)
    density = _density(conn, tops, match)
    total = sum(
        (top & MAX_INDEXED_SEQ) - (ranges[num].low & MAX_INDEXED_SEQ) + 1 for _, num, top in tops
    )
    if density <= SPARSE_DENSITY and density * total <= SPARSE_IN_SCOPE:
        sparse = _sparse(conn, ranges, query)
        if sparse is not None:
            return heapq.nlargest(limit, found + sparse, key=Candidate.key)
    width = max(WINDOW, int(2 * limit / max(density, 1e-3)))
    best = heapq.nlargest(limit, found, key=Candidate.key)
    for index, (top_at, num, top) in enumerate(tops):
        if len(best) >= limit:
            if top_at < best[-1].created_at:
                break  # this scope, and every one after it, holds only older entries
            return _newer(conn, phrases, ranges, tops[index:], best, query)
        more = _dense(conn, ranges[num], top, width, query)
        best = heapq.nlargest(limit, best + more, key=Candidate.key)
    return best


def _density(conn: sqlite3.Connection, tops: list[tuple[float, int, int]], match: str) -> float:
    """The share of matching documents in the newest window of the newest scopes."""
    matched = seen = 0
    for _, num, top in tops[:PROBE_SCOPES]:
        low = max(top - WINDOW + 1, (num << SEQ_BITS) | 1)
        (count,) = conn.execute(
            "SELECT count(*) FROM search_index"
            " WHERE search_index MATCH ? AND rowid BETWEEN ? AND ?",
            (match, low, top),
        ).fetchone()
        matched += count
        seen += top - low + 1
    return matched / seen if seen else 0.0


def _ranges(conn: sqlite3.Connection, scopes: Sequence[Scope]) -> dict[int, _Range]:
    """The scopes that have indexed documents, by timeline number."""
    nums = _nums(conn, [scope.timeline_id for scope in scopes])
    ranges = {}
    for scope in scopes:
        num = nums.get(scope.timeline_id)
        last = MAX_INDEXED_SEQ if scope.last is None else min(scope.last, MAX_INDEXED_SEQ)
        if num is not None and max(scope.first, 1) <= last:
            base = num << SEQ_BITS
            ranges[num] = _Range(scope.timeline_id, num, base | max(scope.first, 1), base | last)
    return ranges


def _candidate(ranges: dict[int, _Range], row: Sequence[Any]) -> Candidate | None:
    """The candidate of a ``(id, created_at, facet, body)`` row inside its scope."""
    scope = ranges.get(row[0] >> SEQ_BITS)
    if scope is None or not scope.low <= row[0] <= scope.high:
        return None
    return Candidate(scope.timeline_id, row[0] & MAX_INDEXED_SEQ, row[1], row[2], row[3])


def _staged(
    conn: sqlite3.Connection,
    phrases: Sequence[Phrase],
    ranges: dict[int, _Range],
    query: _Query,
) -> list[Candidate]:
    args = dict(query.args)
    needles = []
    for index, p in enumerate(phrases):
        args[f"n{index}"] = term_needle(p)
        needles.append(f"AND instr(' ' || d.terms || ' ', :n{index}) > 0")
    rows = conn.execute(
        "SELECT d.id, d.created_at, d.facet, d.body FROM search_pending d"
        f" WHERE (d.id >> {SEQ_BITS}) IN {_IN_SCOPE} {' '.join(needles)} {query.filters}",
        args,
    )
    return [c for c in (_candidate(ranges, row) for row in rows) if c and query.keep(c)]


def _sparse(
    conn: sqlite3.Connection, ranges: dict[int, _Range], query: _Query
) -> list[Candidate] | None:
    """The newest ``limit`` indexed matches of the scopes, from one pass over
    the postings; None when the scopes hold more than ``2 * SPARSE_IN_SCOPE``.
    The matches' documents are read newest first per scope, in rounds, while
    a scope may still hold one newer than the ``limit``-th so far."""
    ids = conn.execute(
        "SELECT rowid FROM search_index WHERE search_index MATCH :match"
        f" AND (rowid >> {SEQ_BITS}) IN {_IN_SCOPE} LIMIT :cap",
        {**query.args, "cap": 2 * SPARSE_IN_SCOPE + 1},
    ).fetchall()
    if len(ids) > 2 * SPARSE_IN_SCOPE:
        return None
    by_scope: dict[int, list[int]] = {}
    for (doc_id,) in ids:  # ascending: each scope's list ends with its newest
        scope = ranges[doc_id >> SEQ_BITS]
        if scope.low <= doc_id <= scope.high:
            by_scope.setdefault(scope.num, []).append(doc_id)
    best: list[Candidate] = []
    size = SPARSE_FIRST
    while by_scope:  # each round reads the newest unread ``size`` of each scope
        batch = []
        for doc_ids in by_scope.values():
            batch += doc_ids[-size:]
            del doc_ids[-size:]
        rows = conn.execute(
            "SELECT d.id, d.created_at, d.facet, d.body FROM search_docs d"
            " WHERE d.id IN (SELECT value FROM json_each(:ids))",
            {"ids": orjson.dumps(batch).decode()},
        )
        oldest: dict[int, float] = {}  # of each scope, the oldest document read
        for row in rows:
            num = row[0] >> SEQ_BITS
            oldest[num] = min(oldest.get(num, row[1]), row[1])
            candidate = _candidate(ranges, row)
            if candidate is not None and query.admits(candidate):
                best.append(candidate)
        best = heapq.nlargest(query.limit, best, key=Candidate.key)
        # A scope whose oldest document read is older than the ``limit``-th
        # match so far has nothing left that can enter.
        bar = best[-1].created_at if len(best) >= query.limit else None
        by_scope = {
            num: doc_ids
            for num, doc_ids in by_scope.items()
            if doc_ids and (bar is None or num not in oldest or oldest[num] >= bar)
        }
        size *= WINDOW_GROWTH
    return best


def _newest_first(
    conn: sqlite3.Connection, ranges: dict[int, _Range]
) -> list[tuple[float, int, int]]:
    """(time and id of the newest indexed document, timeline number) of each
    scope that has one, newest first."""
    found = []
    for scope in ranges.values():
        row = conn.execute(
            "SELECT id, created_at FROM search_docs WHERE id BETWEEN ? AND ?"
            " ORDER BY id DESC LIMIT 1",
            (scope.low, scope.high),
        ).fetchone()
        if row is not None:
            found.append((row[1], scope.num, row[0]))
    found.sort(reverse=True)
    return found


def _dense(
    conn: sqlite3.Connection, scope: _Range, top: int, width: int, query: _Query
) -> list[Candidate]:
    """The newest ``limit`` indexed matches of one scope, read in widening windows."""
    statement = _WINDOW.format(filters=query.filters)
    found: list[Candidate] = []
    upper = top
    while upper >= scope.low and len(found) < query.limit:
        lower = max(scope.low, upper - width + 1)
        rows = conn.execute(statement, {**query.args, "low": lower, "high": upper})
        found += [c for c in (_candidate_of(scope, row) for row in rows) if query.keep(c)]
        upper = lower - 1
        width *= WINDOW_GROWTH
    return heapq.nlargest(query.limit, found, key=Candidate.key)


def _newer(
    conn: sqlite3.Connection,
    phrases: Sequence[Phrase],
    ranges: dict[int, _Range],
    tops: list[tuple[float, int, int]],
    best: list[Candidate],
    query: _Query,
) -> list[Candidate]:
    """``best`` (``limit`` hits) improved by the scopes of ``tops``.

    Only their documents newer than the ``limit``-th hit can enter, a few per
    scope: they are read newest first from ``search_docs``, ``TAIL_WINDOW``
    ids per scope in the first round and ``WINDOW_GROWTH`` times more in each
    next one, all scopes in one statement, and matched here on their terms.
    (An FTS5 statement per scope costs more than those few documents: it
    seeks the term in every segment of the index.)
    """
    needles = [term_needle(p) for p in phrases]
    pending = [(num, top) for top_at, num, top in tops if top_at >= best[-1].created_at]
    size = TAIL_WINDOW
    while pending:
        windows = [(max(ranges[num].low, top - size + 1), top) for num, top in pending]
        lowest: dict[int, tuple[int, float]] = {}  # each window's oldest document
        rows = conn.execute(_WINDOWS, {"windows": orjson.dumps(windows).decode()})
        for row in rows:
            num = row[0] >> SEQ_BITS
            if num not in lowest or row[0] < lowest[num][0]:
                lowest[num] = (row[0], row[1])
            candidate = _candidate(ranges, row)
            if candidate is not None and query.admits(candidate):
                text = f" {' '.join(terms(candidate.text))} "
                if all(needle in text for needle in needles):
                    best.append(candidate)
        best = heapq.nlargest(query.limit, best, key=Candidate.key)
        bar = best[-1].created_at
        # A scope whose window held nothing older than the bar may hold more below.
        pending = [
            (num, low - 1)
            for (num, _), (low, _) in zip(pending, windows, strict=True)
            if low > ranges[num].low and (num not in lowest or lowest[num][1] >= bar)
        ]
        size *= WINDOW_GROWTH
    return best


# The documents of some id windows (``[[low, high], …]``).
_WINDOWS = """
SELECT d.id, d.created_at, d.facet, d.body
FROM json_each(:windows) w JOIN search_docs d
    ON d.id BETWEEN json_extract(w.value, '$[0]') AND json_extract(w.value, '$[1]')
"""


def _candidate_of(scope: _Range, row: Sequence[Any]) -> Candidate:
    return Candidate(scope.timeline_id, row[0] & MAX_INDEXED_SEQ, row[1], row[2], row[3])


def _match(conn: sqlite3.Connection, phrases: Sequence[Phrase]) -> str | None:
    """The FTS5 expression, word prefixes expanded; None when one matches nothing."""
    parts = []
    for p in phrases:
        last = p.terms[-1]
        if p.prefix and len(last) > 1 and not is_unspaced(last[0]):
            words = [
                row[0]
                for row in conn.execute(
                    "SELECT term FROM search_vocab WHERE term >= ? AND term < ? LIMIT ?",
                    (last, last[:-1] + chr(ord(last[-1]) + 1), EXPANSIONS + 1),
                )
            ]
            if not words:
                return None
            if len(words) <= EXPANSIONS:
                each = [fts5_query([Phrase((*p.terms[:-1], word), False)]) for word in words]
                parts.append("(" + " OR ".join(each) + ")")
                continue
        parts.append(fts5_query([p]))
    return " AND ".join(parts)


def _nums(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    chunk = 500  # SQLite's host parameter limit
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        marks = ",".join("?" * len(part))
        found.update(
            conn.execute(
                f"SELECT id, num FROM search_timelines WHERE id IN ({marks})", part
            ).fetchall()
        )
    return found
