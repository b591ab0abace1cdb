"""Searching the PostgreSQL index (see :mod:`.postgres_search` for its tables).

A search first *walks* the user's scopes newest first on their primary key,
testing each entry's terms, and stops once no scope can hold a newer match
(:class:`_Walk`); a term the walk finds rare is read through the GIN index
instead (``SEARCH_SPARSE``, ``SEARCH_SPARSE_KEYED``). Which of the two costs
less is judged from the density the walk finds and, for a query of several
terms, from PostgreSQL's lexeme statistics (:class:`LexemeStats`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import TidingsError
from .search import Candidate, Phrase, Scope, like_pattern, normalise, tsquery

log = logging.getLogger(__name__)

# Runs a read statement and returns its rows: ``fetch(sql, *args)``.
Fetch = Callable[..., Awaitable[Any]]

_NO_SEQ_LIMIT = 2**63 - 1

# A search first *walks* the scopes newest first, stopping as soon as no scope
# can hold a newer match; that suits a frequent term. Its first step reads
# ``WALK_FIRST`` entries in all (``WALK_FIRST_WINDOW`` at least per scope):
# when fewer than ``WALK_DENSITY`` of them match, the term is rare and is
# found through the GIN index instead (every match in the scopes, then the
# newest), unless walking on is still expected to be cheaper (see
# :class:`LexemeStats`). Measured at 1,000,000 messages, 100 scopes: a term in
# 3-5% of messages walks in 4-12 ms against 16-40 ms through the index; one in
# 0.5% takes 32 ms walking against 20 ms through the index.
WALK_DENSITY = 0.01
WALK_FIRST = 800
WALK_FIRST_WINDOW = 8
# Entries a walk may read before it gives way to the GIN index (a term the
# first step overrated, or a ``before`` filter far in the past), unless the
# index is expected to cost more.
WALK_BUDGET = 8_000
# Scopes walked together; a user with more is walked in batches, the scopes
# with the newest entries first, until a batch cannot hold a newer match.
WALK_BATCH = 200
# A scope's next window is sized from how fast it was written so far: enough
# entries to reach back to the page's bar (or, before there is one, to where
# the density found so far promises the missing matches), with this margin;
# at most four times its previous window, and at most ``WALK_LARGEST_WINDOW``
# (the first window is the first step's share, which may be more).
WALK_MARGIN = 1.25
WALK_LARGEST_WINDOW = 1024
# When the index is expected to cost more than ``WALK_FIRST`` entries, the
# first step reads up to this fraction of its cost (at most ``WALK_BUDGET``):
# a larger step wastes more when it finds the phrase rare, a smaller one tells
# its density less well.
WALK_FIRST_SHARE = 4
# What one more walk statement costs beyond its entries, in entries (a round
# trip, planning the lateral joins: about 1.5 ms, as much as 1,000 entries).
WALK_STEP_ENTRIES = 1_000
# The GIN index reads this many postings in the time a walk reads one entry
# (measured at 1,000,000 messages: 40-47 ns a posting, 1.6 us an entry).
GIN_POSTINGS_PER_ENTRY = 40
# In an AND of terms, the GIN index skips through a frequent term's postings
# guided by the rarest term's (its "fast scan"); measured, a term costs about
# as much as its postings, up to this many times the rarest term's.
GIN_SKIP_RATIO = 4
# How long lexeme statistics are used before they are read again.
LEXEME_STATS_TTL_S = 300.0

# Filters shared by the search statements ($1-$9 as in search_arguments).
_FILTERS = """($6::float8 IS NULL OR e.created_at >= $6)
        AND ($7::float8 IS NULL OR e.created_at < $7)
        AND ($8::text IS NULL OR e.facet = $8)
        AND ($9::float8 IS NULL OR e.created_at < $9 OR (e.created_at = $9 AND e.seq < w.tiebreak))
"""
_MATCHES = f"e.terms @@ $5::tsquery AND {_FILTERS}"
_SPARSE = f"""
SELECT e.timeline_id, e.seq, e.created_at, e.facet, e.body
FROM search_entries e
JOIN unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
    AS w (timeline_id, first, last, tiebreak)
    ON e.timeline_id = w.timeline_id AND e.seq BETWEEN w.first AND w.last
WHERE e.timeline_id = ANY($1::text[]) AND {{match}} AND {_FILTERS}
ORDER BY e.created_at DESC, e.timeline_id DESC, e.seq DESC
LIMIT $10
"""
# Reads a query's matches in the scopes through the GIN index, newest first.
SEARCH_SPARSE = _SPARSE.format(match="e.terms @@ $5::tsquery")
# The same for a query with a phrase of several terms: the index is asked for
# the documents holding all of its terms ($11, :func:`.search.index_key`), and
# the phrase is checked on those rows (``ts_match_vq`` is the function of
# ``@@``; called by name, the planner does not take it to the index).
# PostgreSQL estimates a phrase's matches as if its terms were independent
# (each occurrence counted again): for a phrase of frequent characters
# (``的是是是``) it expects a few hundred rows where the index gives 16,000, and
# rechecks every one on its heap page instead of first intersecting them with
# the scopes' keys (measured at 1,000,000 messages, 100 scopes: 47-95 ms
# against 29-42 ms).
SEARCH_SPARSE_KEYED = _SPARSE.format(
    match="e.terms @@ $11::tsquery AND ts_match_vq(e.terms, $5::tsquery)"
)
# One step of a walk: the newest $10[i] entries of each scope at or below its
# ``last`` seq; returns the matches, the window's newest entry (``rn`` 1) and,
# for a scope with that many entries, its oldest (``rn`` $10[i]), where the
# next step goes on from.
WALK = f"""
SELECT w.timeline_id, x.seq, x.created_at, x.facet, x.body, x.hit, x.rn
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $10::int[])
    AS w (timeline_id, first, last, tiebreak, size)
CROSS JOIN LATERAL (
    SELECT e.seq, e.created_at, e.facet, CASE WHEN e.hit THEN e.body END AS body, e.hit, e.rn
    FROM (
        SELECT e.seq, e.created_at, e.facet, e.body, {_MATCHES} AS hit,
            row_number() OVER (ORDER BY e.seq DESC) AS rn
        FROM search_entries e
        WHERE e.timeline_id = w.timeline_id AND e.seq BETWEEN w.first AND w.last
        ORDER BY e.seq DESC
        LIMIT w.size
    ) e
) x
WHERE x.hit OR x.rn = w.size OR x.rn = 1
"""
# When each scope's newest indexed entry was written (to walk many in order).
NEWEST = """
SELECT w.timeline_id, (
    SELECT e.created_at FROM search_entries e
    WHERE e.timeline_id = w.timeline_id AND e.seq BETWEEN w.first AND w.last
    ORDER BY e.seq DESC LIMIT 1
)
FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS w (timeline_id, first, last)
"""

SEARCH_META = """
SELECT m.id, m.fields
FROM search_meta s JOIN meta m ON m.id = s.id
WHERE s.id >= $1 AND s.id < $2 AND s.body LIKE $3
ORDER BY strpos(E'\\n' || s.body, E'\\n' || $4) = 0, s.id
LIMIT $5
"""


async def search(
    fetch: Fetch, fetch_planned: Fetch, args: tuple[Any, ...], key: str | None, gin_entries: int
) -> list[Candidate]:
    """The newest matches for :func:`search_arguments` ``args``, newest first;
    ``key`` is the query's :func:`.search.index_key`, ``gin_entries`` what
    reading the GIN index is expected to cost (:meth:`LexemeStats.gin_entries`).
    ``fetch(sql, *args)`` runs a read statement and returns its rows,
    ``fetch_planned`` too with :func:`fetch_custom_planned`."""
    found = await _Walk(args, gin_entries).run(fetch)
    if found is None:
        if key is None:
            rows = await fetch_planned(SEARCH_SPARSE, *args)
        else:
            rows = await fetch_planned(SEARCH_SPARSE_KEYED, *args, key)
        found = candidates(rows)
    return found


# The number of rows of ``search_entries`` and its most common lexemes with
# their frequencies (the share of rows holding each), as ANALYZE sampled them;
# no row when the table was never analysed.
LEXEME_STATS = """
SELECT c.reltuples, s.most_common_elems::text::text[], s.most_common_elem_freqs
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = 'terms'
WHERE c.oid = 'search_entries'::regclass
"""


class LexemeStats:
    """What reading the GIN index for a query is expected to cost, from how
    often its lexemes occur (PostgreSQL's statistics of the ``terms`` column,
    which ANALYZE, run by autovacuum, keeps for its 1,000 most common lexemes).

    The walk asks this when its first step finds a phrase rare. A phrase of
    frequent characters (``的一的的``: each bigram in 23-37% of messages) may be
    rare, yet the index reads every posting of its terms before the scopes
    narrow anything (830,000 postings, 30-40 ms at 1,000,000 messages), while
    walking finds its 20 newest matches among the scopes' newest few thousand
    entries (10 ms).
    """

    def __init__(self) -> None:
        self.rows = 0.0
        self.frequencies: dict[str, float] = {}
        self.read_at = -math.inf

    async def refresh(self, fetch: Fetch) -> None:
        """Read the statistics again when they are older than
        ``LEXEME_STATS_TTL_S``. A failed read is logged and leaves the
        statistics as they were (the search goes on without it)."""
        now = time.monotonic()
        if now - self.read_at < LEXEME_STATS_TTL_S:
            return
        self.read_at = now  # concurrent searches use the statistics at hand meanwhile
        try:
            rows = await fetch(LEXEME_STATS)
        except TidingsError as exc:
            log.warning("could not read the search index's lexeme statistics: %s", exc)
            return
        if rows and rows[0][1] is not None:
            reltuples, lexemes, frequencies = rows[0]
            self.rows = max(0.0, reltuples)
            self.frequencies = dict(zip(lexemes, frequencies, strict=False))
        else:  # never analysed (or the table was re-created)
            self.rows, self.frequencies = 0.0, {}

    def gin_entries(self, phrases: Sequence[Phrase]) -> int:
        """What the GIN index is expected to spend on a query of several
        terms, in walked entries (``GIN_POSTINGS_PER_ENTRY``, ``GIN_SKIP_RATIO``);
        0 for one term, whose cost is fetching its matches (the walk's density
        rule weighs that) or when no statistics are known."""
        terms = {
            (term, p.prefix and index == len(p.terms) - 1)
            for p in phrases
            for index, term in enumerate(p.terms)
        }
        if len(terms) < 2 or not self.frequencies:
            return 0
        shares = [self._share(term, prefix) for term, prefix in terms]
        rarest = min(shares)
        postings = self.rows * sum(min(share, GIN_SKIP_RATIO * rarest) for share in shares)
        return int(postings / GIN_POSTINGS_PER_ENTRY)

    def _share(self, term: str, prefix: bool) -> float:
        """The share of rows holding ``term`` (any lexeme starting with it, for a
        prefix); 0 for a lexeme too rare to be listed."""
        if not prefix:
            return self.frequencies.get(term, 0.0)
        return min(1.0, sum(f for lexeme, f in self.frequencies.items() if lexeme.startswith(term)))


async def fetch_custom_planned(conn: Any, sql: str, *args: Any) -> Any:
    """The rows of ``sql`` planned for these very arguments.

    A prepared statement run a few times may switch to a generic plan, made
    without looking at the arguments. For :data:`SEARCH_SPARSE` that plan
    reads every entry of every scope through the primary key (measured at
    1,000,000 messages, 100 scopes: 120-150 ms against 10-30 ms through the GIN
    index): PostgreSQL takes it once the GIN index's estimated cost, which
    counts the pages of its pending list, makes the arguments' own plans look
    dearer.
    """
    async with conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        return await conn.fetch(sql, *args)


@dataclass(slots=True)
class _Window:
    """A scope being walked: the seqs left to read (``first`` to ``last``), the
    size of its next window, and what its windows so far showed."""

    timeline_id: str
    first: int
    last: int
    tiebreak: int
    size: int
    newest: float | None = None  # when its newest entry (in range) was written
    read: int = 0
    oldest: float = 0.0  # when the oldest entry read so far was written

    def rate(self) -> float:
        """Entries per second written in the part of the scope read so far."""
        span = (self.newest or 0.0) - self.oldest
        return self.read / span if span > 0 else math.inf


class _Walk:
    """Reads the scopes newest first in windows, keeping the best ``limit``
    matches, until no scope can hold a newer one (:meth:`run`).

    Within a timeline, seq order is time order (the store never stamps a
    later seq earlier): once a scope's window ends below the ``limit``-th best
    match so far (or the ``after`` bound), nothing older in it can enter.
    """

    def __init__(self, args: tuple[Any, ...], gin_entries: int) -> None:
        ids, firsts, lasts, ties = args[:4]
        self.scopes: list[tuple[str, int, int, int]] = list(
            zip(ids, firsts, lasts, ties, strict=True)
        )
        self.filters = args[4:9]
        self.limit: int = args[9]
        self.gin_entries = gin_entries
        self.budget = max(WALK_BUDGET, gin_entries)
        self.best: list[Candidate] = []
        self.read = 0
        self.hits = 0
        # Whether the first step found the term frequent (see WALK_DENSITY).
        self.frequent: bool | None = None

    async def run(self, fetch: Fetch) -> list[Candidate] | None:
        """The newest matches, or None when the GIN index is expected to find
        them sooner: the term is rarer than the walk can afford, or the walk
        would read more than its budget."""
        scopes = self.scopes
        newest: dict[str, float] = {}
        if len(scopes) > WALK_BATCH:
            ids, firsts, lasts, _ = map(list, zip(*scopes, strict=True))
            newest = {row[0]: row[1] for row in await fetch(NEWEST, ids, firsts, lasts)}
            scopes = sorted(
                (s for s in scopes if newest[s[0]] is not None), key=lambda s: -newest[s[0]]
            )
        first = max(WALK_FIRST, min(self.gin_entries // WALK_FIRST_SHARE, WALK_BUDGET))
        size = max(WALK_FIRST_WINDOW, -(-first // max(1, min(len(scopes), WALK_BATCH))))
        for start in range(0, len(scopes), WALK_BATCH):
            batch = scopes[start : start + WALK_BATCH]
            if len(self.best) >= self.limit and newest:
                if newest[batch[0][0]] < self.best[-1].created_at:
                    break  # every later scope's newest entry is older than the matches found
            pending = [_Window(*scope, size) for scope in batch]
            while pending:
                self.read += sum(w.size for w in pending)
                if self.read > self.budget:
                    return None
                pending = await self._step(fetch, pending)
                if pending:
                    if not self._worth_walking():
                        return None
                    self._size(pending)
        return self.best

    async def _step(self, fetch: Fetch, pending: list[_Window]) -> list[_Window]:
        """Read the next window of each scope; returns those to read on."""
        columns = (
            [w.timeline_id for w in pending],
            [w.first for w in pending],
            [w.last for w in pending],
            [w.tiebreak for w in pending],
        )
        rows = await fetch(WALK, *columns, *self.filters, [w.size for w in pending])
        windows = {w.timeline_id: w for w in pending}
        ended: list[_Window] = []
        for timeline_id, seq, created_at, facet, body, hit, rn in rows:
            window = windows[timeline_id]
            if hit:
                self.hits += 1
                self.best.append(Candidate(timeline_id, seq, created_at, facet, body))
            if rn == 1 and window.newest is None:
                window.newest = created_at
            if rn == window.size:
                window.read += window.size
                window.oldest = created_at
                window.last = seq - 1
                ended.append(window)
        self.best.sort(key=Candidate.key, reverse=True)
        del self.best[self.limit :]
        bar = self.best[-1].key() if len(self.best) >= self.limit else None
        after = self.filters[1]
        return [
            w
            for w in ended
            if (bar is None or (w.oldest, w.timeline_id, w.last + 1) > bar)
            and (after is None or w.oldest >= after)
        ]

    def _worth_walking(self) -> bool:
        """Whether walking on is expected to cost less than reading the index:
        the term is frequent (judged once, at the first step), or the
        density found so far promises the missing matches in fewer entries
        than the index's cost."""
        if self.frequent is None:
            self.frequent = self.hits >= WALK_DENSITY * self.read
        found = len(self.best)
        if found >= self.limit or self.frequent:
            return True
        if not self.hits:
            return False
        more = (self.limit - found) * self.read / self.hits
        return self.read + more + WALK_STEP_ENTRIES <= self.gin_entries

    def _size(self, pending: list[_Window]) -> None:
        """Size each scope's next window (see ``WALK_MARGIN``): back to the bar
        once there is one, else as far back in time in every scope as the
        missing matches need at the density found so far; four times the last
        one when that cannot be told (no match yet, entries written at the
        same instant)."""
        rates = [w.rate() for w in pending]
        if len(self.best) >= self.limit:
            bar = self.best[-1].created_at
            wanted = [
                rate * (w.oldest - bar) if w.oldest > bar else 0.0
                for w, rate in zip(pending, rates, strict=True)
            ]
        elif self.hits and math.isfinite(total := sum(rates)):
            span = (self.limit - len(self.best)) * self.read / self.hits / total
            wanted = [rate * span for rate in rates]
        else:
            wanted = [math.inf] * len(pending)
        for w, want in zip(pending, wanted, strict=True):
            grown = min(4 * w.size, WALK_LARGEST_WINDOW)
            want *= WALK_MARGIN
            w.size = grown if want >= grown else max(WALK_FIRST_WINDOW, math.ceil(want) + 1)


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


def search_meta_arguments(kind: str, query: str, limit: int) -> tuple[Any, ...] | None:
    text = normalise(query)
    if not text:
        return None
    return (kind + ":", kind + ";", like_pattern(text), text, limit)
