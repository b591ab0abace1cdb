"""The embedded backend: one SQLite file in WAL mode.

All writes go through one writer thread that owns the only write connection. It
takes every job queued while the previous commit ran and runs them in ONE
transaction (group commit), each job in its own savepoint so that a failing job
rolls back alone; the callers' futures resolve after the commit. Reads run on a
small pool of reader threads, each with its own connection, so the event loop
never waits on the disk.

Layout: a message body is stored once in ``bodies`` (reference counted) and
entries carry only a reference, so a message fanned out to a hundred inboxes
costs a hundred small index rows, not a hundred copies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson

from ..errors import InvalidInput, TidingsError, Unavailable
from .model import Batch, EncodedAppend, Entry, Message, Page

log = logging.getLogger(__name__)

T = TypeVar("T")

# A group commit takes at most this many jobs, so one commit's latency stays
# bounded when thousands of writers are queued.
MAX_JOBS_PER_COMMIT = 512
# A reader pool of two matches this machine's two cores; readers spend most of
# their time in SQLite with the GIL released.
READER_THREADS = 2
# How long a writer waits for another process holding the write lock.
BUSY_TIMEOUT_MS = 10_000
# 64 MiB of page cache per connection keeps the hot part of the indexes in memory.
CACHE_KIB = 64 * 1024
# SQLite limits host parameters per statement; heads() queries in chunks.
IN_CHUNK = 500

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE timelines (
            id TEXT PRIMARY KEY,
            last_seq INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE bodies (
            id INTEGER PRIMARY KEY,
            refs INTEGER NOT NULL,
            data BLOB NOT NULL
        )""",
        """CREATE TABLE entries (
            timeline_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            body_id INTEGER NOT NULL,
            created_at REAL NOT NULL,
            client_id TEXT,
            ref_timeline TEXT,
            ref_seq INTEGER,
            PRIMARY KEY (timeline_id, seq)
        ) WITHOUT ROWID""",
        """CREATE UNIQUE INDEX entries_client_id ON entries (timeline_id, client_id)
            WHERE client_id IS NOT NULL""",
        """CREATE TABLE meta (
            id TEXT PRIMARY KEY,
            fields TEXT NOT NULL
        ) WITHOUT ROWID""",
    ],
]

_Job = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class SQLiteBackend:
    """See the module docstring. ``synchronous`` is SQLite's pragma: FULL syncs
    the WAL at every commit (durable across power loss); NORMAL survives a crash
    of the process but not of the machine."""

    def __init__(self, path: str, *, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in ("FULL", "NORMAL"):
            raise InvalidInput("synchronous must be FULL or NORMAL")
        self.path = path
        self.synchronous = synchronous.upper()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # -- life cycle ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        return conn

    async def open(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        try:
            conn = await asyncio.to_thread(self._connect)
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open SQLite database {self.path!r}: {exc}") from None
        self._writer = threading.Thread(
            target=self._write_forever, args=(conn,), name="tidings-sqlite-writer", daemon=True
        )
        self._writer.start()
        self._readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="tidings-sqlite-read")
        await self._write(_migrate)

    async def close(self) -> None:
        if self._writer is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None
        with self._lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    # -- the writer thread -----------------------------------------------------

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise Unavailable("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, future, loop))
        return await future

    def _write_forever(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                first = self._jobs.get()
                if first is None:
                    return
                jobs = [first]
                stop = False
                while len(jobs) < MAX_JOBS_PER_COMMIT:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stop = True
                        break
                    jobs.append(job)
                _deliver(jobs, _commit(conn, jobs))
                if stop:
                    return
        finally:
            conn.close()

    # -- reads -----------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None:
            raise Unavailable("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            with self._lock:
                self._reader_conns.append(conn)
        try:
            return fn(conn)
        except sqlite3.Error as exc:
            log.error("SQLite read failed: %s", exc)
            raise Unavailable("the database could not be read; retry later") from None

    # -- entries ---------------------------------------------------------------

    async def append_many(self, items: Sequence[EncodedAppend], now: float) -> Batch:
        return await self._write(lambda conn: _append_many(conn, items, now))

    async def get(self, timeline_id: str, seq: int, not_before: float | None) -> Entry | None:
        def read(conn: sqlite3.Connection) -> Entry | None:
            row = conn.execute(_SELECT_ENTRY, (timeline_id, seq)).fetchone()
            if row is None or (not_before is not None and row[1] < not_before):
                return None
            return _entry(timeline_id, row)

        return await self._read(read)

    async def update(
        self, timeline_id: str, seq: int, fields: Message, encode: Callable[[Message], bytes]
    ) -> Entry | None:
        def write(conn: sqlite3.Connection) -> Entry | None:
            row = conn.execute(
                "SELECT e.body_id, e.created_at, e.client_id, e.ref_timeline, e.ref_seq,"
                " b.data, b.refs"
                " FROM entries e JOIN bodies b ON b.id = e.body_id"
                " WHERE e.timeline_id = ? AND e.seq = ?",
                (timeline_id, seq),
            ).fetchone()
            if row is None:
                return None
            body_id, created_at, client_id, ref_timeline, ref_seq, data, refs = row
            message = orjson.loads(data)
            message.update(fields)
            body = encode(message)
            if refs == 1:
                conn.execute("UPDATE bodies SET data = ? WHERE id = ?", (body, body_id))
            else:
                conn.execute("UPDATE bodies SET refs = refs - 1 WHERE id = ?", (body_id,))
                new_id = conn.execute(
                    "INSERT INTO bodies (refs, data) VALUES (1, ?)", (body,)
                ).lastrowid
                conn.execute(
                    "UPDATE entries SET body_id = ? WHERE timeline_id = ? AND seq = ?",
                    (new_id, timeline_id, seq),
                )
            ref = None if ref_timeline is None else (ref_timeline, ref_seq)
            return Entry(timeline_id, seq, message, created_at, client_id, ref)

        return await self._write(write)

    async def delete(self, timeline_id: str, seq: int) -> None:
        def write(conn: sqlite3.Connection) -> None:
            rows = conn.execute(
                "DELETE FROM entries WHERE timeline_id = ? AND seq = ? RETURNING body_id",
                (timeline_id, seq),
            ).fetchall()
            _release_bodies(conn, (row[0] for row in rows))

        await self._write(write)

    async def heads(self, timeline_ids: Sequence[str]) -> dict[str, int]:
        def read(conn: sqlite3.Connection) -> dict[str, int]:
            found = dict.fromkeys(timeline_ids, 0)
            for start in range(0, len(timeline_ids), IN_CHUNK):
                chunk = timeline_ids[start : start + IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                found.update(
                    conn.execute(
                        f"SELECT id, last_seq FROM timelines WHERE id IN ({marks})", chunk
                    ).fetchall()
                )
            return found

        return await self._read(read)

    async def scan(
        self,
        timeline_id: str,
        after: int | None,
        before: int | None,
        limit: int,
        forward: bool,
        not_before: float | None,
    ) -> Page:
        sql = [_SELECT_ENTRIES]
        args: list[Any] = [timeline_id]
        if after is not None:
            sql.append("AND e.seq > ?")
            args.append(after)
        if before is not None:
            sql.append("AND e.seq < ?")
            args.append(before)
        if not_before is not None:
            sql.append("AND e.created_at >= ?")
            args.append(not_before)
        sql.append("ORDER BY e.seq ASC LIMIT ?" if forward else "ORDER BY e.seq DESC LIMIT ?")
        args.append(limit + 1)
        statement = " ".join(sql)

        def read(conn: sqlite3.Connection) -> Page:
            rows = conn.execute(statement, args).fetchall()
            entries = tuple(_entry(timeline_id, row) for row in rows[:limit])
            return Page(entries, len(rows) > limit)

        return await self._read(read)

    async def oldest_seq(self, timeline_id: str, not_before: float | None) -> int:
        def read(conn: sqlite3.Connection) -> int:
            if not_before is None:
                row = conn.execute(
                    "SELECT min(seq) FROM entries WHERE timeline_id = ?", (timeline_id,)
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT min(seq) FROM entries WHERE timeline_id = ? AND created_at >= ?",
                    (timeline_id, not_before),
                ).fetchone()
            if row[0] is not None:
                return int(row[0])
            head = conn.execute(
                "SELECT last_seq FROM timelines WHERE id = ?", (timeline_id,)
            ).fetchone()
            return (head[0] if head else 0) + 1

        return await self._read(read)

    async def purge(
        self, kind: str, before: float, start_after: str | None, max_timelines: int
    ) -> tuple[int, str | None]:
        low, high = _prefix_range(kind + ":")

        def write(conn: sqlite3.Connection) -> tuple[int, str | None]:
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM timelines WHERE id >= ? AND id < ? AND id > ?"
                    " ORDER BY id LIMIT ?",
                    (low, high, start_after or "", max_timelines),
                )
            ]
            deleted = 0
            for timeline_id in ids:
                rows = conn.execute(
                    "DELETE FROM entries WHERE timeline_id = ? AND created_at < ?"
                    " RETURNING body_id",
                    (timeline_id, before),
                ).fetchall()
                deleted += len(rows)
                _release_bodies(conn, (row[0] for row in rows))
            return deleted, (ids[-1] if len(ids) == max_timelines else None)

        return await self._write(write)

    # -- metadata --------------------------------------------------------------

    async def get_meta(self, timeline_id: str) -> dict[str, Any] | None:
        def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute("SELECT fields FROM meta WHERE id = ?", (timeline_id,)).fetchone()
            return None if row is None else orjson.loads(row[0])

        return await self._read(read)

    async def put_meta(self, timeline_id: str, fields: Mapping[str, Any]) -> None:
        text = orjson.dumps(fields).decode()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO meta (id, fields) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET fields = excluded.fields",
                (timeline_id, text),
            )

        await self._write(write)

    async def update_meta(self, timeline_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        def write(conn: sqlite3.Connection) -> dict[str, Any]:
            row = conn.execute("SELECT fields FROM meta WHERE id = ?", (timeline_id,)).fetchone()
            merged: dict[str, Any] = {} if row is None else orjson.loads(row[0])
            for key, value in fields.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            conn.execute(
                "INSERT INTO meta (id, fields) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET fields = excluded.fields",
                (timeline_id, orjson.dumps(merged).decode()),
            )
            return merged

        return await self._write(write)

    async def delete_meta(self, timeline_id: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM meta WHERE id = ?", (timeline_id,))

        await self._write(write)

    async def find_meta(
        self, prefix: str, where: Mapping[str, Any], after: str | None, limit: int
    ) -> list[tuple[str, dict[str, Any]]]:
        sql = ["SELECT id, fields FROM meta WHERE id > ?"]
        args: list[Any] = [after or ""]
        if prefix:
            low, high = _prefix_range(prefix)
            sql.append("AND id >= ? AND id < ?")
            args += [low, high]
        for key, value in where.items():
            sql.append("AND json_extract(fields, ?) = ?")
            args += ["$." + orjson.dumps(key).decode(), value]
        sql.append("ORDER BY id LIMIT ?")
        args.append(limit)
        statement = " ".join(sql)

        def read(conn: sqlite3.Connection) -> list[tuple[str, dict[str, Any]]]:
            return [(row[0], orjson.loads(row[1])) for row in conn.execute(statement, args)]

        return await self._read(read)


# -- jobs run on the writer thread ----------------------------------------------

_SELECT_ENTRIES = (
    "SELECT e.seq, e.created_at, e.client_id, e.ref_timeline, e.ref_seq, b.data"
    " FROM entries e JOIN bodies b ON b.id = e.body_id WHERE e.timeline_id = ?"
)
_SELECT_ENTRY = _SELECT_ENTRIES + " AND e.seq = ?"
_SELECT_BY_CLIENT_ID = _SELECT_ENTRIES + " AND e.client_id = ?"


def _entry(timeline_id: str, row: tuple[Any, ...]) -> Entry:
    seq, created_at, client_id, ref_timeline, ref_seq, data = row
    ref = None if ref_timeline is None else (ref_timeline, ref_seq)
    return Entry(timeline_id, seq, orjson.loads(data), created_at, client_id, ref)


def _append_many(conn: sqlite3.Connection, items: Sequence[EncodedAppend], now: float) -> Batch:
    originals = []
    for item in items:
        if item.client_id is not None:
            row = conn.execute(_SELECT_BY_CLIENT_ID, (item.timeline_id, item.client_id)).fetchone()
            if row is not None:
                originals.append(_entry(item.timeline_id, row))
    if originals:
        return Batch(tuple(originals), replayed=True)

    next_seq: dict[str, int] = {}
    for timeline_id, count in Counter(item.timeline_id for item in items).items():
        (last,) = conn.execute(
            "INSERT INTO timelines (id, last_seq) VALUES (?, ?) ON CONFLICT (id)"
            " DO UPDATE SET last_seq = last_seq + excluded.last_seq RETURNING last_seq",
            (timeline_id, count),
        ).fetchall()[0]
        next_seq[timeline_id] = last - count + 1

    body_ids: dict[bytes, int] = {}
    messages: dict[bytes, Message] = {}
    for body, refs in Counter(item.body for item in items).items():
        cursor = conn.execute("INSERT INTO bodies (refs, data) VALUES (?, ?)", (refs, body))
        body_ids[body] = cursor.lastrowid  # type: ignore[assignment]
        messages[body] = orjson.loads(body)

    rows = []
    entries = []
    for item in items:
        seq = next_seq[item.timeline_id]
        next_seq[item.timeline_id] = seq + 1
        ref = None
        if item.ref is not None:
            target = entries[item.ref]
            ref = (target.timeline_id, target.seq)
        rows.append(
            (item.timeline_id, seq, body_ids[item.body], now, item.client_id)
            + (ref or (None, None))
        )
        entries.append(Entry(item.timeline_id, seq, messages[item.body], now, item.client_id, ref))
    try:
        conn.executemany(
            "INSERT INTO entries"
            " (timeline_id, seq, body_id, created_at, client_id, ref_timeline, ref_seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    except sqlite3.IntegrityError:
        raise InvalidInput("a client id appears twice for one timeline in the batch") from None
    return Batch(tuple(entries))


def _release_bodies(conn: sqlite3.Connection, body_ids: Iterable[int]) -> None:
    for body_id, count in Counter(body_ids).items():
        conn.execute("UPDATE bodies SET refs = refs - ? WHERE id = ?", (count, body_id))
        conn.execute("DELETE FROM bodies WHERE id = ? AND refs <= 0", (body_id,))


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    for version, statements in enumerate(MIGRATIONS, start=1):
        if version in done:
            continue
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
        log.info("applied SQLite migration %d", version)


def _commit(conn: sqlite3.Connection, jobs: list[_Job]) -> list[tuple[bool, Any]]:
    """Run ``jobs`` in one transaction; returns (ok, result or exception) per job."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        log.error("SQLite could not start a write: %s", exc)
        error = Unavailable("the database is busy or unavailable; retry")
        return [(False, error)] * len(jobs)
    single = len(jobs) == 1
    results: list[tuple[bool, Any]] = []
    for fn, _, _ in jobs:
        if not single:
            conn.execute("SAVEPOINT job")
        try:
            result = fn(conn)
        except Exception as exc:
            if single:
                conn.execute("ROLLBACK")
                return [(False, _public(exc))]
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            results.append((False, _public(exc)))
        else:
            if not single:
                conn.execute("RELEASE job")
            results.append((True, result))
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        log.error("SQLite commit failed: %s", exc)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        error = Unavailable("the write could not be committed; retry")
        return [(False, error)] * len(jobs)
    return results


def _public(exc: Exception) -> Exception:
    if isinstance(exc, TidingsError):
        return exc
    log.error("SQLite write failed: %r", exc)
    return Unavailable("the write failed; retry later")


def _deliver(jobs: list[_Job], results: list[tuple[bool, Any]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for (_, future, loop), (ok, value) in zip(jobs, results, strict=True):
        by_loop.setdefault(loop, []).append((future, ok, value))
    for loop, outcomes in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, outcomes)
        except RuntimeError:
            pass  # that loop is closed: nobody waits for these results any more


def _resolve(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _prefix_range(prefix: str) -> tuple[str, str]:
    """Bounds ``low <= id < high`` of the ids that start with ``prefix``."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)
