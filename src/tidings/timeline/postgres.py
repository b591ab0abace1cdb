"""The server backend: PostgreSQL through asyncpg.

Every statement on timeline data names its timeline id (the distribution column),
so the three tables can be sharded by timeline id on Citus without a change here;
see ``docs/postgres.md``.

Appends are ONE statement, hence one implicit transaction and one round trip: it
upserts the ``timelines`` rows in sorted id order (each row lock serialises the
appenders of that timeline and, taken in one global order, cannot deadlock with
another statement), then inserts the entries with seqs computed from the
returned heads. A client id already present makes the statement fail on the
unique index, so nothing is written; the originals are then read back. Row locks
are held only inside the server, never across a network round trip.

Group commit: while every connection is busy, further ``append_many`` calls
queue; the next free writer takes the queued batches (oldest first, up to
``MAX_ITEMS_PER_COMMIT`` items) and writes them in one statement, so one commit
serves many callers. When that statement fails on one batch's data (a known
client id, a refused value), the batches are written one by one instead, so that
each caller gets its own outcome.

Messages are stored inline as the exact bytes the store encoded (``bytea``): one
copy per entry keeps an entry on its timeline's shard, and bytes round-trip
exactly where ``jsonb`` would reorder keys and reject ``\\u0000``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import orjson

from ..errors import InvalidInput, TidingsError, Unavailable
from . import locks, reindexing
from . import postgres_search as search_sql
from . import postgres_search_read as search_read
from .model import Batch, EncodedAppend, Entry, Message, Page, merged_record
from .reindexing import Progress, ReindexCounts
from .search import Candidate, Phrase, Scope, SearchConfig, index_key

log = logging.getLogger(__name__)
T = TypeVar("T")

# A node needs few connections: statements are short and asyncio multiplexes
# callers over them. Eight per node lets about ten nodes share a server with the
# default max_connections = 100; more than the database's cores adds contention,
# not throughput.
MIN_CONNECTIONS = 2
MAX_CONNECTIONS = 8
# Fail fast when the server is unreachable instead of hanging the caller.
CONNECT_TIMEOUT_S = 10.0
# Bounds the wait for a free connection and for any one statement (a lock queue
# on a hot timeline included), so a stalled server surfaces as Unavailable.
ACQUIRE_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 30.0
# close() waits this long for statements in flight before cutting connections.
CLOSE_TIMEOUT_S = 10.0
# Concurrent appends are written together, up to this many items per statement:
# one commit (one WAL flush, one lock per timeline) then serves many callers,
# while a statement stays small enough to hold its locks only briefly.
MAX_ITEMS_PER_COMMIT = 1024
# The share of the pool that writes appends. Group commit needs few writers (each
# carries many callers), and reads keep connections of their own during a write
# burst: on 2 cores, 4 writers of 8 connections wrote as fast as 8 did (fan-out
# and single appends) and kept newest-20 scans under load at 2-3 ms p50, not 12.
WRITER_SHARE = 0.5
# Deadlocks and serialisation failures roll back the whole statement, so it is
# safe to run it again; they are not expected (locks are taken in sorted order).
WRITE_ATTEMPTS = 3
# The advisory lock held while migrating, so that nodes starting together apply
# each migration once. Any constant works if nothing else uses it ("tidings").
MIGRATION_LOCK_KEY = 0x7469_6469_6E67_73
# Sentinels that make every scan bound a parameter: one prepared plan per direction.
_NO_AFTER = 0
_NO_BEFORE = 2**63 - 1
_NO_CUTOFF = float("-inf")

MIGRATIONS: list[list[str]] = [
    [
        # COLLATE "C": ids compare byte-wise whatever the database's locale, so
        # prefix ranges and id order match the SQLite backend. fillfactor leaves
        # room on each page for HOT updates of last_seq.
        """CREATE TABLE timelines (
            id text COLLATE "C" PRIMARY KEY,
            last_seq bigint NOT NULL
        ) WITH (fillfactor = 50)""",
        """CREATE TABLE entries (
            timeline_id text COLLATE "C" NOT NULL,
            seq bigint NOT NULL,
            created_at double precision NOT NULL,
            client_id text,
            ref_timeline text,
            ref_seq bigint,
            message bytea NOT NULL,
            PRIMARY KEY (timeline_id, seq)
        )""",
        """CREATE UNIQUE INDEX entries_client_id ON entries (timeline_id, client_id)
            WHERE client_id IS NOT NULL""",
        """CREATE TABLE meta (
            id text COLLATE "C" PRIMARY KEY,
            fields jsonb NOT NULL
        )""",
        "CREATE INDEX meta_fields ON meta USING gin (fields jsonb_path_ops)",
    ],
]

# An entry is stamped with its writer's clock reading, or with the time of its
# timeline's entry before it when that is later (``prev_at``: ``last_at``
# before this statement; writers stamp before they take seqs, and nodes'
# clocks differ), so that within a timeline time never runs backwards.
_APPEND = """
WITH heads AS (
    INSERT INTO timelines AS t (id, last_seq, last_at)
    SELECT * FROM unnest($1::text[], $2::bigint[], $11::float8[])
    ON CONFLICT (id) DO UPDATE SET last_seq = t.last_seq + excluded.last_seq,
        prev_at = t.last_at, last_at = greatest(t.last_at, excluded.last_at)
    RETURNING t.id, t.last_seq, t.prev_at
), written AS (
    INSERT INTO entries
        (timeline_id, seq, created_at, client_id, ref_timeline, ref_seq, message)
    SELECT i.timeline_id, h.last_seq - i.back, greatest(($3::float8[])[i.variant], h.prev_at),
        i.client_id, i.ref_timeline, r.last_seq - i.ref_back, ($4::bytea[])[i.variant]
    FROM unnest($5::text[], $6::bigint[], $7::text[], $8::text[], $9::bigint[], $10::int[])
        AS i (timeline_id, back, client_id, ref_timeline, ref_back, variant)
    JOIN heads h ON h.id = i.timeline_id
    LEFT JOIN heads r ON r.id = i.ref_timeline
)
SELECT id, last_seq, prev_at FROM heads
"""
# 2: the search index, kept in postgres_search.py.
MIGRATIONS.append(search_sql.MIGRATION)
# 3: the time of each timeline's last entry (see _APPEND).
MIGRATIONS.append(
    [
        "ALTER TABLE timelines ADD COLUMN last_at double precision NOT NULL DEFAULT 0,"
        " ADD COLUMN prev_at double precision NOT NULL DEFAULT 0"
    ]
)
# 4: a larger GIN pending list (see postgres_search.PENDING_LIST_KB).
MIGRATIONS.append(search_sql.PENDING_LIST_MIGRATION)

_head, _, _tail = _APPEND.rpartition("SELECT id, last_seq, prev_at FROM heads")
# The append statement that also writes the index rows of indexed items.
_APPEND_INDEXED = (
    _head.rstrip("\n") + search_sql.INDEX_CTE + "SELECT id, last_seq, prev_at FROM heads" + _tail
)
_CLIENT_ID_INDEX = "entries_client_id"
_COLUMNS = "seq, created_at, client_id, ref_timeline, ref_seq, message"
_SELECT_ENTRY = f"SELECT {_COLUMNS} FROM entries WHERE timeline_id = $1 AND seq = $2"
_SELECT_ORIGINALS = f"""
SELECT e.timeline_id, e.{_COLUMNS.replace(", ", ", e.")}
FROM unnest($1::text[], $2::text[]) AS k (timeline_id, client_id)
JOIN entries e ON e.timeline_id = k.timeline_id AND e.client_id = k.client_id
WHERE e.client_id IS NOT NULL
"""
_SCAN = f"""
SELECT {_COLUMNS} FROM entries
WHERE timeline_id = $1 AND seq > $2 AND seq < $3 AND created_at >= $4
ORDER BY seq {{}} LIMIT $5
"""
_SCAN_FORWARD = _SCAN.format("ASC")
_SCAN_BACKWARD = _SCAN.format("DESC")
_DELETE_ENTRY = "DELETE FROM entries WHERE timeline_id = $1 AND seq = $2"
_PURGE = "DELETE FROM entries WHERE timeline_id = ANY($1::text[]) AND created_at < $2"
_OLDEST_SEQ = """
SELECT coalesce(
    (SELECT min(seq) FROM entries WHERE timeline_id = $1 AND created_at >= $2),
    (SELECT last_seq + 1 FROM timelines WHERE id = $1),
    1)
"""


class PostgresBackend:
    """See the module docstring.

    Args:
        url: a libpq-style URL, ``postgresql://user@host:port/database``.
        min_connections, max_connections: the connection pool's bounds; at
            least 2 connections (a named lock keeps one while its holder
            works on another).
    """

    def __init__(
        self,
        url: str,
        *,
        min_connections: int = MIN_CONNECTIONS,
        max_connections: int = MAX_CONNECTIONS,
        search: SearchConfig | None = None,
        merge_pending_after: int | None = search_sql.MERGE_PENDING_AFTER,
    ) -> None:
        if max_connections < 2:
            raise InvalidInput("a PostgreSQL store needs at least 2 connections")
        if merge_pending_after is not None and (
            not isinstance(merge_pending_after, int) or merge_pending_after < 1
        ):
            raise InvalidInput("merge_pending_after must be a positive number of rows, or None")
        self.url = url
        self.search_config = search
        # Index rows written since this process last merged the GIN index's
        # pending list, and that merge while it runs (see MERGE_PENDING_AFTER;
        # None: never, the list is merged by the append that fills it). The
        # first indexed append merges what earlier processes left waiting.
        self.merge_pending_after = merge_pending_after
        self._unmerged = merge_pending_after or 0
        self._merging: asyncio.Task[None] | None = None
        self.min_connections = min_connections
        self.max_connections = max_connections
        self._pool: Any = None
        # Named locks hold a connection each: at most half of the pool.
        self._lock_slots = asyncio.Semaphore(max(1, max_connections // 2))
        self._queue: deque[_Job] = deque()
        self._lexemes = search_read.LexemeStats()
        # Callers beyond this many writers queue their batches, and the next free
        # writer takes them together (see WRITER_SHARE).
        self._writers = asyncio.Semaphore(max(1, int(max_connections * WRITER_SHARE)))

    # -- life cycle ------------------------------------------------------------

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self.min_connections,
                max_size=self.max_connections,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                server_settings={"application_name": "tidings"},
            )
        except Exception as exc:
            log.error("cannot connect to PostgreSQL: %r", exc)
            raise Unavailable(f"cannot connect to PostgreSQL: {_first_line(exc)}") from None
        try:
            async with self._connection() as conn:
                await _migrate(conn)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._merging is not None:
            self._merging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._merging
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("PostgreSQL pool did not close cleanly (%r); terminating it", exc)
            pool.terminate()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pooled connection; database failures leave as Tidings errors."""
        if self._pool is None:
            raise Unavailable("the store is closed")
        try:
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                yield conn
        except TidingsError:
            raise
        except Exception as exc:
            raise _public(exc) from None

    async def _read(self, method: str, sql: str, *args: Any) -> Any:
        """Run one read-only statement with ``conn.<method>``."""
        return await self._reading(lambda conn: getattr(conn, method)(sql, *args))

    async def _reading(self, read: Callable[[Any], Awaitable[T]]) -> T:
        """``read(conn)``, which only reads, on a pooled connection.

        A pooled connection may have died while idle (a server restart, a
        failover); a read is then tried once more on a fresh connection, which is
        safe because it changes nothing. Writes are never retried this way: their
        commit may have happened.
        """
        try:
            async with self._connection() as conn:
                return await read(conn)
        except _ConnectionLost:
            async with self._connection() as conn:
                return await read(conn)

    # -- entries ---------------------------------------------------------------

    async def append_many(self, items: Sequence[EncodedAppend], now: float) -> Batch:
        job = _Job(items, now, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        try:
            async with self._writers:
                # Take queued jobs until this one is taken (by this writer or
                # another), so that no job waits without a writer to take it.
                while job.queued:
                    await asyncio.shield(self._commit(self._take()))
        except BaseException:
            if job.queued:  # cancelled while waiting: the batch is never written
                job.queued = False
                self._queue.remove(job)
            else:  # it may still be written: its outcome is nobody's to read
                job.future.add_done_callback(_discard_outcome)
            raise
        batch = await job.future
        if self.search_config is not None and not batch.replayed:
            self._indexed(
                sum(map(self.search_config.indexes, (e.timeline_id for e in batch.entries)))
            )
        return batch

    def _indexed(self, rows: int) -> None:
        """Count index rows written (at most: entries of indexed timelines);
        past ``merge_pending_after``, merge the pending list in the background."""
        self._unmerged += rows
        limit = self.merge_pending_after
        if limit is not None and self._unmerged >= limit and self._merging is None:
            self._unmerged = 0
            self._merging = asyncio.create_task(self._merge_pending())

    async def _merge_pending(self) -> None:
        try:
            async with self._connection() as conn:
                await conn.execute(search_sql.MERGE_PENDING)
        except TidingsError as exc:
            log.warning("could not merge the search index's pending list: %s", exc)
        finally:
            self._merging = None

    def _take(self) -> list[_Job]:
        """The oldest queued jobs, up to ``MAX_ITEMS_PER_COMMIT`` items (at least one)."""
        group: list[_Job] = []
        size = 0
        while self._queue and (
            not group or size + len(self._queue[0].items) <= MAX_ITEMS_PER_COMMIT
        ):
            job = self._queue.popleft()
            job.queued = False
            group.append(job)
            size += len(job.items)
        return group

    async def _commit(self, group: list[_Job]) -> None:
        """Write the jobs' batches in one statement and resolve their futures.

        A client id already present, or a value the database refuses, fails the
        whole statement; the jobs are then written one by one, so that each gets
        its own outcome (written, replayed or refused).
        """
        try:
            async with self._connection() as conn:
                if len(group) > 1:
                    try:
                        batches = await _write_together(conn, group, self.search_config)
                    except _Clash:
                        pass
                    else:
                        for job, batch in zip(group, batches, strict=True):
                            _settle(job.future, batch)
                        return
                for job in group:
                    try:
                        outcome = await _write_alone(conn, job, self.search_config)
                        _settle(job.future, outcome)
                    except Exception as exc:
                        _settle(job.future, _public(exc))
        except Exception as exc:
            error = _public(exc)
            for job in group:
                _settle(job.future, error)
        finally:  # cancelled (the loop is shutting down): nobody is left waiting
            for job in group:
                _settle(job.future, Unavailable("the store is closing; retry"))

    async def get(self, timeline_id: str, seq: int, not_before: float | None) -> Entry | None:
        row = await self._read("fetchrow", _SELECT_ENTRY, timeline_id, seq)
        if row is None or (not_before is not None and row[1] < not_before):
            return None
        return _entry(timeline_id, row)

    async def update(
        self, timeline_id: str, seq: int, fields: Message, encode: Callable[[Message], bytes]
    ) -> Entry | None:
        async with self._connection() as conn, conn.transaction():
            row = await conn.fetchrow(_SELECT_ENTRY + " FOR UPDATE", timeline_id, seq)
            if row is None:
                return None
            entry = _entry(timeline_id, row)
            entry.message.update(fields)
            await conn.execute(
                "UPDATE entries SET message = $3 WHERE timeline_id = $1 AND seq = $2",
                timeline_id,
                seq,
                encode(entry.message),
            )
            if self.search_config is not None:
                await search_sql.reindex(
                    conn, self.search_config, timeline_id, seq, entry.message, entry.created_at
                )
        return entry

    async def delete(self, timeline_id: str, seq: int) -> None:
        async with self._connection() as conn:
            if self.search_config and self.search_config.indexes(timeline_id):
                await search_sql.delete_entry(conn, timeline_id, seq)
            else:
                await conn.execute(_DELETE_ENTRY, timeline_id, seq)

    async def heads(self, timeline_ids: Sequence[str]) -> dict[str, int]:
        rows = await self._read(
            "fetch", "SELECT id, last_seq FROM timelines WHERE id = ANY($1::text[])", timeline_ids
        )
        found = dict.fromkeys(timeline_ids, 0)
        found.update((row[0], row[1]) for row in rows)
        return found

    async def scan(
        self,
        timeline_id: str,
        after: int | None,
        before: int | None,
        limit: int,
        forward: bool,
        not_before: float | None,
    ) -> Page:
        rows = await self._read(
            "fetch",
            _SCAN_FORWARD if forward else _SCAN_BACKWARD,
            timeline_id,
            _NO_AFTER if after is None else after,
            _NO_BEFORE if before is None else before,
            _NO_CUTOFF if not_before is None else not_before,
            limit + 1,
        )
        entries = tuple(_entry(timeline_id, row) for row in rows[:limit])
        return Page(entries, len(rows) > limit)

    async def oldest_seq(self, timeline_id: str, not_before: float | None) -> int:
        cutoff = _NO_CUTOFF if not_before is None else not_before
        return int(await self._read("fetchval", _OLDEST_SEQ, timeline_id, cutoff))

    async def purge(
        self, kind: str, before: float, start_after: str | None, max_timelines: int
    ) -> tuple[int, str | None]:
        low, high = _prefix_range(kind + ":")
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT id FROM timelines WHERE id >= $1 AND id < $2 AND id > $3"
                " ORDER BY id LIMIT $4",
                low,
                high,
                start_after or "",
                max_timelines,
            )
            ids = [row[0] for row in rows]
            if not ids:
                return 0, None
            if self.search_config and self.search_config.indexes(low):
                status = await search_sql.purge(conn, ids, before)
            else:
                status = await conn.execute(_PURGE, ids, before)
        return search_sql.row_count(status), (ids[-1] if len(ids) == max_timelines else None)

    # -- metadata --------------------------------------------------------------

    async def get_meta(self, timeline_id: str) -> dict[str, Any] | None:
        text = await self._read("fetchval", "SELECT fields FROM meta WHERE id = $1", timeline_id)
        return None if text is None else _json_object(text)

    async def put_meta(self, timeline_id: str, fields: Mapping[str, Any]) -> None:
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO meta (id, fields) VALUES ($1, $2::jsonb)"
                " ON CONFLICT (id) DO UPDATE SET fields = excluded.fields",
                timeline_id,
                _json_text(fields),
            )
            if self.search_config is not None:
                await search_sql.put_meta_text(conn, self.search_config, timeline_id, fields)

    async def update_meta(
        self,
        timeline_id: str,
        fields: Mapping[str, Any],
        add: Mapping[str, int],
        highest: Mapping[str, int],
    ) -> dict[str, Any]:
        kept = {key: value for key, value in fields.items() if value is not None}
        removed = [key for key, value in fields.items() if value is None]
        async with self._connection() as conn, conn.transaction():
            if add or highest:  # read, change and write back under the row's lock
                await conn.execute(
                    "INSERT INTO meta (id, fields) VALUES ($1, '{}') ON CONFLICT DO NOTHING",
                    timeline_id,
                )
                current = await conn.fetchval(
                    "SELECT fields FROM meta WHERE id = $1 FOR UPDATE", timeline_id
                )
                merged = merged_record(_json_object(current), fields, add, highest)
                await conn.execute(
                    "UPDATE meta SET fields = $2::jsonb WHERE id = $1",
                    timeline_id,
                    _json_text(merged),
                )
            else:
                text = await conn.fetchval(
                    "INSERT INTO meta AS m (id, fields) VALUES ($1, $2::jsonb)"
                    " ON CONFLICT (id) DO UPDATE"
                    " SET fields = (m.fields || excluded.fields) - $3::text[]"
                    " RETURNING fields",
                    timeline_id,
                    _json_text(kept),
                    removed,
                )
                merged = _json_object(text)
            if self.search_config is not None:
                await search_sql.put_meta_text(conn, self.search_config, timeline_id, merged)
        return merged

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        return locks.advisory(self._connection, self._lock_slots, key)

    async def delete_meta(self, timeline_id: str) -> None:
        async with self._connection() as conn:
            await search_sql.delete_meta(conn, timeline_id)

    async def find_meta(
        self, prefix: str, where: Mapping[str, Any], after: str | None, limit: int
    ) -> list[tuple[str, dict[str, Any]]]:
        sql = ["SELECT id, fields FROM meta WHERE id > $1"]
        args: list[Any] = [after or ""]
        if prefix:
            low, high = _prefix_range(prefix)
            args.append(low)
            sql.append(f"AND id >= ${len(args)}")
            if high is not None:
                args.append(high)
                sql.append(f"AND id < ${len(args)}")
        if where:
            args.append(_json_text(where))
            sql.append(f"AND fields @> ${len(args)}::jsonb")
        args.append(limit)
        sql.append(f"ORDER BY id LIMIT ${len(args)}")
        rows = await self._read("fetch", " ".join(sql), *args)
        return [(row[0], _json_object(row[1])) for row in rows]

    # -- search ----------------------------------------------------------------

    async def search(
        self,
        phrases: Sequence[Phrase],
        scopes: Sequence[Scope],
        *,
        after: float | None,
        before: float | None,
        facet: str | None,
        cursor: tuple[float, str, int] | None,
        limit: int,
    ) -> list[Candidate]:
        if self.search_config is None:
            return []
        args = search_read.search_arguments(phrases, scopes, after, before, facet, cursor, limit)
        fetch = functools.partial(self._read, "fetch")
        await self._lexemes.refresh(fetch)
        return await search_read.search(
            fetch,
            self._read_custom_planned,
            args,
            index_key(phrases),
            self._lexemes.gin_entries(phrases),
        )

    async def _read_custom_planned(self, sql: str, *args: Any) -> Any:
        """``_read("fetch", …)`` planned for these arguments (see
        ``postgres_search_read.fetch_custom_planned``)."""
        return await self._reading(lambda conn: search_read.fetch_custom_planned(conn, sql, *args))

    async def search_meta(
        self, kind: str, query: str, limit: int
    ) -> list[tuple[str, dict[str, Any]]]:
        args = search_read.search_meta_arguments(kind, query, limit)
        if self.search_config is None or args is None:
            return []
        rows = await self._read("fetch", search_read.SEARCH_META, *args)
        return [(row[0], _json_object(row[1])) for row in rows]

    async def reindex(self, *, full: bool, progress: Progress | None) -> ReindexCounts:
        if self.search_config is None:
            raise InvalidInput("the store indexes nothing: open it with a SearchConfig")
        steps = search_sql.Reindex(
            self.search_config, self._connection, functools.partial(self._read, "fetch")
        )
        return await reindexing.run(steps, self.search_config, full=full, progress=progress)


@dataclass(slots=True, eq=False)
class _Job:
    """One ``append_many`` call waiting for (or in) a commit."""

    items: Sequence[EncodedAppend]
    now: float
    future: asyncio.Future[Batch]
    queued: bool = True


class _Clash(Exception):
    """Jobs written together failed on one job's data (see ``_commit``)."""


async def _write_together(
    conn: Any, group: Sequence[_Job], search: SearchConfig | None
) -> list[Batch]:
    plan = _AppendPlan(group, search)
    try:
        rows = await _run_append(conn, plan)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != _CLIENT_ID_INDEX:
            raise
        raise _Clash from None
    except asyncpg.DataError:
        raise _Clash from None
    return plan.batches(rows)


async def _write_alone(conn: Any, job: _Job, search: SearchConfig | None) -> Batch:
    plan = _AppendPlan([job], search)
    for _ in range(WRITE_ATTEMPTS):
        try:
            rows = await _run_append(conn, plan)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != _CLIENT_ID_INDEX:
                raise
            originals = await _originals(conn, job.items)
            if originals:
                return Batch(originals, replayed=True)
            if plan.repeats_a_client_id():
                raise InvalidInput(
                    "a client id appears twice for one timeline in the batch"
                ) from None
            # The clashing entry was deleted since: try the batch again.
        else:
            return plan.batches(rows)[0]
    raise Unavailable("the batch could not be written; retry")


async def _run_append(conn: Any, plan: _AppendPlan) -> list[Any]:
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            rows: list[Any] = await conn.fetch(plan.statement, *plan.arguments())
            return rows
        except asyncpg.TransactionRollbackError:
            if attempt == WRITE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


class _AppendPlan:
    """The arguments of the append statement for the batches of some jobs, and
    the batches it yields once the new heads are known.

    The jobs' items are written as one list, in job order. Items of a timeline
    get consecutive seqs in that order: an item's seq is its timeline's new
    ``last_seq`` minus ``back``, the number of later items of that timeline.
    Each distinct (message, clock reading) is sent once, as a "variant".
    Within a timeline, later items are never stamped earlier (see _APPEND).
    """

    def __init__(self, jobs: Sequence[_Job], search: SearchConfig | None = None) -> None:
        self.jobs = jobs
        self.items: list[EncodedAppend] = []
        self.refs: list[int | None] = []  # an item's ref, as an index into self.items
        self.nows: list[float] = []
        self.variant: list[int] = []
        self.variants: dict[tuple[bytes, float], int] = {}
        # Each timeline's latest stamp so far: a job queued after another but
        # stamped earlier (a clock stepped back) takes the earlier one's time.
        self.latest: dict[str, float] = {}
        for job in jobs:
            offset = len(self.items)
            for item in job.items:
                now = max(job.now, self.latest.get(item.timeline_id, job.now))
                self.latest[item.timeline_id] = now
                self.items.append(item)
                self.nows.append(now)
                self.refs.append(None if item.ref is None else offset + item.ref)
                key = (item.body, now)
                self.variant.append(self.variants.setdefault(key, len(self.variants) + 1))
        self.counts = Counter(item.timeline_id for item in self.items)
        seen: Counter[str] = Counter()
        self.back: list[int] = []
        for item in self.items:
            seen[item.timeline_id] += 1
            self.back.append(self.counts[item.timeline_id] - seen[item.timeline_id])
        self.index = None
        if search is not None:
            self.index = search_sql.index_rows(
                search,
                [
                    (item.timeline_id, back, now, item.body)
                    for item, back, now in zip(self.items, self.back, self.nows, strict=True)
                ],
            )
        self.statement = _APPEND if self.index is None else _APPEND_INDEXED

    def arguments(self) -> tuple[Any, ...]:
        # Sorted ids: every batch locks its timelines in the same global order.
        ids = sorted(self.counts)
        return (
            ids,
            [self.counts[timeline_id] for timeline_id in ids],
            [now for _, now in self.variants],
            [body for body, _ in self.variants],
            [item.timeline_id for item in self.items],
            self.back,
            [item.client_id for item in self.items],
            [None if ref is None else self.items[ref].timeline_id for ref in self.refs],
            [None if ref is None else self.back[ref] for ref in self.refs],
            self.variant,
            [self.latest[timeline_id] for timeline_id in ids],
        ) + (self.index or ())

    def batches(self, rows: Sequence[Any]) -> list[Batch]:
        """One batch per job, from the statement's ``(id, last_seq, prev_at)`` rows."""
        heads = {row[0]: row[1] for row in rows}
        before = {row[0]: row[2] for row in rows}
        messages = {body: orjson.loads(body) for body, _ in self.variants}
        entries: list[Entry] = []
        for item, ref, back, now in zip(self.items, self.refs, self.back, self.nows, strict=True):
            target = None if ref is None else entries[ref]
            entries.append(
                Entry(
                    item.timeline_id,
                    heads[item.timeline_id] - back,
                    messages[item.body],
                    max(now, before[item.timeline_id]),
                    item.client_id,
                    None if target is None else (target.timeline_id, target.seq),
                )
            )
        batches = []
        start = 0
        for job in self.jobs:
            stop = start + len(job.items)
            batches.append(Batch(tuple(entries[start:stop])))
            start = stop
        return batches

    def repeats_a_client_id(self) -> bool:
        keys = [(i.timeline_id, i.client_id) for i in self.items if i.client_id is not None]
        return len(keys) != len(set(keys))


def _settle(future: asyncio.Future[Batch], outcome: Batch | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _discard_outcome(future: asyncio.Future[Batch]) -> None:
    if not future.cancelled():
        future.exception()  # marks it retrieved: no "never retrieved" warning


async def _originals(conn: Any, items: Sequence[EncodedAppend]) -> tuple[Entry, ...]:
    """The stored entries of the items whose client id is present, in item order."""
    keyed = [item for item in items if item.client_id is not None]
    rows = await conn.fetch(
        _SELECT_ORIGINALS,
        [item.timeline_id for item in keyed],
        [item.client_id for item in keyed],
    )
    found = {(row[0], row[3]): _entry(row[0], row[1:]) for row in rows}
    return tuple(
        found[key] for key in ((item.timeline_id, item.client_id) for item in keyed) if key in found
    )


def _entry(timeline_id: str, row: Sequence[Any]) -> Entry:
    seq, created_at, client_id, ref_timeline, ref_seq, message = row
    ref = None if ref_timeline is None else (ref_timeline, ref_seq)
    return Entry(timeline_id, seq, orjson.loads(message), created_at, client_id, ref)


async def _migrate(conn: Any) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, statements in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            log.info("applied PostgreSQL migration %d", version)
        if done and max(done) > len(MIGRATIONS):
            log.warning("the database schema (%d) is newer than this code", max(done))


class _ConnectionLost(Unavailable):
    """The connection broke (or could not be made) before a result came back."""


# The connection itself failed; another connection may well work.
_CONNECTION_LOST = (
    ConnectionError,  # refused, reset
    asyncpg.InterfaceError,  # a closed connection or pool
    asyncpg.exceptions.InternalClientError,  # a connection killed while idle
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)
# Failures of the server or the network, not of the request: the caller may retry.
_UNAVAILABLE = (
    OSError,  # includes TimeoutError
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, cancelled, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.PostgresSystemError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a standby after a failover
)


def _public(exc: Exception) -> TidingsError:
    """The Tidings error to raise for a failure of the driver or the server."""
    if isinstance(exc, TidingsError):
        return exc
    if isinstance(exc, asyncpg.DataError):
        return InvalidInput(f"the database refused a value: {_first_line(exc)[:200]}")
    if isinstance(exc, _CONNECTION_LOST):
        log.warning("PostgreSQL connection lost: %r", exc)
        return _ConnectionLost("the database is unavailable; retry later")
    if isinstance(exc, _UNAVAILABLE):
        log.warning("PostgreSQL unavailable: %r", exc)
        return Unavailable("the database is unavailable; retry later")
    log.error("PostgreSQL request failed", exc_info=exc)
    return Unavailable("the storage failed; retry later")


def _first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]


def _json_text(fields: Mapping[str, Any]) -> str:
    return orjson.dumps(fields).decode()


def _json_object(text: str) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(text)
    return value


def _prefix_range(prefix: str) -> tuple[str, str | None]:
    """Bounds ``low <= id < high`` of the ids that start with ``prefix`` (no upper
    bound when ``high`` is None)."""
    head = prefix.rstrip(chr(0x10FFFF))
    if not head:
        return prefix, None
    return prefix, head[:-1] + chr(ord(head[-1]) + 1)
