"""The embedded backend: one SQLite file in WAL mode.

All writes go through one writer thread that owns the only write connection. It
takes every job queued while the previous commit ran and runs them in ONE
transaction (group commit); the callers' futures resolve after the commit. Jobs
first run side by side; only when one fails is the transaction rolled back and
run again with each job in its own savepoint, so that the failing job rolls back
alone (a savepoint copies every page a job touches, which the common case
should not pay for). Reads run on a small pool of reader threads, each with its
own connection, so the event loop never waits on the disk. A checkpoint thread
copies the WAL back into the database file beside the writer.

Layout: a message body is stored once in ``bodies`` (reference counted) and
entries carry only a reference, so a message fanned out to a hundred inboxes
costs a hundred small index rows, not a hundred copies.

New entries are staged in ``recent``, a small table with the same columns, and
move to ``entries`` in key order once ``recent`` is full (see ``STAGED_ROWS``):
a two-level log-structured merge. Every read looks at both tables; an entry is
in exactly one of them, and a merge moves entries in one transaction.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import queue
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import orjson

from ..errors import InvalidInput, Unavailable
from . import locks, reindexing
from .model import Batch, EncodedAppend, Entry, Message, Page, merged_record
from .reindexing import Progress, ReindexCounts
from .search import Candidate, Phrase, Scope, SearchConfig
from .sqlite_commit import Job, commit, deliver
from .sqlite_schema import migrate
from .sqlite_search import Reindex, SQLiteSearch

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
# New entries are staged in ``recent`` and moved to ``entries`` once it holds this
# many. Written straight into ``entries``, a fan-out to a hundred inboxes dirties
# a hundred B-tree pages scattered over the whole table, and each dirty page is
# written whole to the WAL and again by the checkpoint. ``recent`` is small, so
# its pages are few and stay hot; a merge then writes each page of ``entries``
# once for all the entries its timelines gathered meanwhile. 65,536 rows (a few
# MB) stay in the page cache and give a merge several entries per timeline for
# tens of thousands of busy timelines.
STAGED_ROWS = 65_536
# A merge moves one slice of the timeline-id space per group commit, so writers
# wait for a slice (milliseconds), never for the whole table.
MERGE_SLICES = 8
# While no write is waiting, the writer keeps merging until ``recent`` is down to
# this many rows, so that a burst of writes after a quiet spell finds room and
# pays for no merge.
IDLE_STAGED_ROWS = STAGED_ROWS // 2
# The WAL is copied back into the database file (checkpointed) by a thread of
# its own this often, so the copy and its fsync overlap the writer's next
# commits instead of delaying them. A quarter second of commits rewrites the hot
# pages (of ``recent``, ``timelines``, ``bodies``) many times; each is copied once.
CHECKPOINT_INTERVAL_S = 0.25
# The writer checkpoints by itself (SQLite's wal_autocheckpoint) only once the
# WAL holds this many pages (128 MiB at 4 KiB pages): under a steady stream of
# commits the checkpoint thread never sees the WAL complete, and only the
# writer's checkpoint, between two of its commits, lets the WAL start over from
# its beginning. By then the checkpoint thread has copied nearly all of it.
WAL_CHECKPOINT_PAGES = 32_768
# The tables an entry may be in; every read of entries looks at both.
ENTRY_TABLES = ("recent", "entries")
_ENTRY_COLUMNS = "timeline_id, seq, body_id, created_at, client_id, ref_timeline, ref_seq"


class SQLiteBackend:
    """See the module docstring. ``synchronous`` is SQLite's pragma: FULL syncs
    the WAL at every commit (durable across power loss); NORMAL survives a crash
    of the process but not of the machine."""

    def __init__(
        self, path: str, *, synchronous: str = "FULL", search: SearchConfig | None = None
    ) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL"):
            raise InvalidInput("synchronous must be FULL or NORMAL")
        self.path = path
        self.synchronous = synchronous.upper()
        self.search_config = search
        self._search = None if search is None else SQLiteSearch(search)
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._stopping = threading.Event()
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Owned by the writer thread: about how many entries ``recent`` holds, and
        # the timeline id the next merge slice starts after.
        self._staged = 0
        self._merge_after = ""

    # -- life cycle ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        # Statement journals (a statement that fails half-way rolls back alone)
        # and savepoints are kept in memory instead of temporary files.
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
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
        await self._write(migrate)
        await self._write(self._count_staged)
        self._stopping.clear()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_forever,
            args=(await asyncio.to_thread(self._connect),),
            name="tidings-sqlite-checkpoint",
            daemon=True,
        )
        self._checkpointer.start()

    async def close(self) -> None:
        if self._writer is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._checkpointer is not None:
            self._stopping.set()
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
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
                first = self._next_job(conn)
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
                results = commit(conn, jobs)
                deliver(jobs, results)
                self._staged += _appended(results)
                if self._staged >= STAGED_ROWS:
                    self._merge_slice(conn)
                if stop:
                    return
        finally:
            conn.close()

    def _checkpoint_forever(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL into the database every ``CHECKPOINT_INTERVAL_S``, without
        blocking the writer or readers (a passive checkpoint)."""
        try:
            while not self._stopping.wait(CHECKPOINT_INTERVAL_S):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    log.warning("background checkpoint failed (the writer's will do): %s", exc)
        finally:
            conn.close()

    def _count_staged(self, conn: sqlite3.Connection) -> None:
        (self._staged,) = conn.execute("SELECT count(*) FROM recent").fetchone()

    def _next_job(self, conn: sqlite3.Connection) -> Job | None:
        """The next queued job; while none is waiting, merge down to
        ``IDLE_STAGED_ROWS`` first (a failed merge ends that until the next write)."""
        while self._staged > IDLE_STAGED_ROWS:
            try:
                return self._jobs.get_nowait()
            except queue.Empty:
                if not self._merge_slice(conn):
                    break
        return self._jobs.get()

    def _merge_slice(self, conn: sqlite3.Connection) -> bool:
        """Move one slice of ``recent`` into ``entries`` in its own transaction.
        Returns whether it succeeded."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            moved, after = _merge(conn, self._merge_after, STAGED_ROWS // MERGE_SLICES)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.warning("merging staged entries failed (retried after the next write): %s", exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return False
        self._merge_after = after
        if after:
            self._staged -= moved
        else:
            self._count_staged(conn)  # a full round: drop the estimate's drift
        return True

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
        search = self._search
        documents = None if search is None else search.prepare(items)

        def write(conn: sqlite3.Connection) -> Batch:
            batch = _append_many(conn, items, now)
            if search is None or documents is None:
                return batch
            return search.appended(conn, batch, documents)

        return await self._write(write)

    async def get(self, timeline_id: str, seq: int, not_before: float | None) -> Entry | None:
        def read(conn: sqlite3.Connection) -> Entry | None:
            row = conn.execute(_SELECT_ENTRY, {"timeline_id": timeline_id, "seq": seq}).fetchone()
            if row is None or (not_before is not None and row[1] < not_before):
                return None
            return _entry(timeline_id, row)

        return await self._read(read)

    async def update(
        self, timeline_id: str, seq: int, fields: Message, encode: Callable[[Message], bytes]
    ) -> Entry | None:
        def write(conn: sqlite3.Connection) -> Entry | None:
            row = conn.execute(
                _SELECT_FOR_UPDATE, {"timeline_id": timeline_id, "seq": seq}
            ).fetchone()
            if row is None:
                return None
            table, body_id, created_at, client_id, ref_timeline, ref_seq, data, refs = row
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
                    f"UPDATE {_entry_table(table)} SET body_id = ?"
                    " WHERE timeline_id = ? AND seq = ?",
                    (new_id, timeline_id, seq),
                )
            if self._search is not None:
                self._search.updated(conn, timeline_id, seq, message, created_at)
            ref = None if ref_timeline is None else (ref_timeline, ref_seq)
            return Entry(timeline_id, seq, message, created_at, client_id, ref)

        return await self._write(write)

    async def delete(self, timeline_id: str, seq: int) -> None:
        def write(conn: sqlite3.Connection) -> None:
            for table in ENTRY_TABLES:
                rows = conn.execute(
                    f"DELETE FROM {table} WHERE timeline_id = ? AND seq = ? RETURNING body_id",
                    (timeline_id, seq),
                ).fetchall()
                _release_bodies(conn, (row[0] for row in rows))
            if self._search is not None:
                self._search.deleted(conn, timeline_id, seq)

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
        where = [_SELECT_ENTRIES]
        args: dict[str, Any] = {"timeline_id": timeline_id, "limit": limit + 1}
        for name, value, condition in (
            ("after", after, "AND e.seq > :after"),
            ("before", before, "AND e.seq < :before"),
            ("not_before", not_before, "AND e.created_at >= :not_before"),
        ):
            if value is not None:
                where.append(condition)
                args[name] = value
        # Both tables deliver rows in seq order; SQLite merges them and stops
        # at the limit.
        order = "ORDER BY seq ASC LIMIT :limit" if forward else "ORDER BY seq DESC LIMIT :limit"
        statement = f"{_both(' '.join(where))} {order}"

        def read(conn: sqlite3.Connection) -> Page:
            rows = conn.execute(statement, args).fetchall()
            entries = tuple(_entry(timeline_id, row) for row in rows[:limit])
            return Page(entries, len(rows) > limit)

        return await self._read(read)

    async def oldest_seq(self, timeline_id: str, not_before: float | None) -> int:
        def read(conn: sqlite3.Connection) -> int:
            cutoff = "" if not_before is None else " AND created_at >= :not_before"
            lowest = "SELECT min(seq) AS seq FROM {table} WHERE timeline_id = :timeline_id"
            row = conn.execute(
                f"SELECT min(seq) FROM ({_both(lowest + cutoff)})",
                {"timeline_id": timeline_id, "not_before": not_before},
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
            for timeline_id, table in itertools.product(ids, ENTRY_TABLES):
                rows = conn.execute(
                    f"DELETE FROM {table} WHERE timeline_id = ? AND created_at < ?"
                    " RETURNING body_id",
                    (timeline_id, before),
                ).fetchall()
                deleted += len(rows)
                _release_bodies(conn, (row[0] for row in rows))
            if self._search is not None:
                for timeline_id in ids:
                    self._search.purged(conn, timeline_id, before)
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
            if self._search is not None:
                self._search.meta_put(conn, timeline_id, fields)

        await self._write(write)

    async def update_meta(
        self,
        timeline_id: str,
        fields: Mapping[str, Any],
        add: Mapping[str, int],
        highest: Mapping[str, int],
    ) -> dict[str, Any]:
        def write(conn: sqlite3.Connection) -> dict[str, Any]:
            row = conn.execute("SELECT fields FROM meta WHERE id = ?", (timeline_id,)).fetchone()
            record = None if row is None else orjson.loads(row[0])
            merged = merged_record(record, fields, add, highest)
            conn.execute(
                "INSERT INTO meta (id, fields) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET fields = excluded.fields",
                (timeline_id, orjson.dumps(merged).decode()),
            )
            if self._search is not None:
                self._search.meta_put(conn, timeline_id, merged)
            return merged

        return await self._write(write)

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        return locks.local(os.path.abspath(self.path), key)

    async def delete_meta(self, timeline_id: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM meta WHERE id = ?", (timeline_id,))
            if self._search is not None:
                self._search.meta_deleted(conn, timeline_id)

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
            path = "$." + orjson.dumps(key).decode()
            # json_extract reads JSON true/false as 1/0, so booleans compare by
            # JSON type and other values must not be booleans.
            if isinstance(value, bool):
                sql.append("AND json_type(fields, ?) = ?")
                args += [path, "true" if value else "false"]
            else:
                sql.append("AND json_extract(fields, ?) = ?")
                sql.append("AND json_type(fields, ?) NOT IN ('true', 'false')")
                args += [path, value, path]
        sql.append("ORDER BY id LIMIT ?")
        args.append(limit)
        statement = " ".join(sql)

        def read(conn: sqlite3.Connection) -> list[tuple[str, dict[str, Any]]]:
            return [(row[0], orjson.loads(row[1])) for row in conn.execute(statement, args)]

        return await self._read(read)

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
        search = self._search
        if search is None:
            return []
        return await self._read(
            lambda conn: search.search(
                conn,
                phrases,
                scopes,
                after=after,
                before=before,
                facet=facet,
                cursor=cursor,
                limit=limit,
            )
        )

    async def search_meta(
        self, kind: str, query: str, limit: int
    ) -> list[tuple[str, dict[str, Any]]]:
        search = self._search
        if search is None:
            return []
        return await self._read(lambda conn: search.search_meta(conn, kind, query, limit))

    async def reindex(self, *, full: bool, progress: Progress | None) -> ReindexCounts:
        if self._search is None:
            raise InvalidInput("the store indexes nothing: open it with a SearchConfig")
        steps = Reindex(self._search, self._read, self._write)
        return await reindexing.run(steps, self._search.config, full=full, progress=progress)


# -- jobs run on the writer thread ----------------------------------------------


def _both(select: str) -> str:
    """``select``, written against the table ``{table}``, over both entry tables."""
    return " UNION ALL ".join(select.format(table=table) for table in ENTRY_TABLES)


def _entry_table(name: str) -> str:
    if name not in ENTRY_TABLES:
        raise ValueError(f"not an entry table: {name!r}")
    return name


_SELECT_ENTRIES = (
    "SELECT e.seq, e.created_at, e.client_id, e.ref_timeline, e.ref_seq, b.data"
    " FROM {table} e JOIN bodies b ON b.id = e.body_id WHERE e.timeline_id = :timeline_id"
)
_SELECT_ENTRY = _both(_SELECT_ENTRIES + " AND e.seq = :seq")
_SELECT_BY_CLIENT_ID = _both(_SELECT_ENTRIES + " AND e.client_id = :client_id")
_SELECT_FOR_UPDATE = _both(
    "SELECT '{table}', e.body_id, e.created_at, e.client_id, e.ref_timeline, e.ref_seq,"
    " b.data, b.refs FROM {table} e JOIN bodies b ON b.id = e.body_id"
    " WHERE e.timeline_id = :timeline_id AND e.seq = :seq"
)


def _entry(timeline_id: str, row: tuple[Any, ...]) -> Entry:
    seq, created_at, client_id, ref_timeline, ref_seq, data = row
    ref = None if ref_timeline is None else (ref_timeline, ref_seq)
    return Entry(timeline_id, seq, orjson.loads(data), created_at, client_id, ref)


def _append_many(conn: sqlite3.Connection, items: Sequence[EncodedAppend], now: float) -> Batch:
    originals = []
    for item in items:
        if item.client_id is not None:
            row = conn.execute(
                _SELECT_BY_CLIENT_ID,
                {"timeline_id": item.timeline_id, "client_id": item.client_id},
            ).fetchone()
            if row is not None:
                originals.append(_entry(item.timeline_id, row))
    if originals:
        return Batch(tuple(originals), replayed=True)

    next_seq, stamps = _advance_heads(conn, Counter(item.timeline_id for item in items), now)

    body_ids: dict[bytes, int] = {}
    messages: dict[bytes, Message] = {}
    for body, refs in Counter(item.body for item in items).items():
        cursor = conn.execute("INSERT INTO bodies (refs, data) VALUES (?, ?)", (refs, body))
        body_ids[body] = cursor.lastrowid  # type: ignore[assignment]
        messages[body] = orjson.loads(body)

    rows = []
    entries: list[Entry] = []
    for item in items:
        seq = next_seq[item.timeline_id]
        next_seq[item.timeline_id] = seq + 1
        ref = None
        if item.ref is not None:
            target = entries[item.ref]
            ref = (target.timeline_id, target.seq)
        stamp = stamps[item.timeline_id]
        rows.append(
            (item.timeline_id, seq, body_ids[item.body], stamp, item.client_id)
            + (ref or (None, None))
        )
        entries.append(
            Entry(item.timeline_id, seq, messages[item.body], stamp, item.client_id, ref)
        )
    try:
        conn.executemany(
            f"INSERT INTO recent ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows
        )
    except sqlite3.IntegrityError:
        raise InvalidInput("a client id appears twice for one timeline in the batch") from None
    return Batch(tuple(entries))


def _advance_heads(
    conn: sqlite3.Connection, counts: Mapping[str, int], now: float
) -> tuple[dict[str, int], dict[str, float]]:
    """Add ``counts[t]`` to each timeline's ``last_seq``, creating absent ones.

    Returns the first seq each timeline gets, and the time its new entries are
    stamped with: ``now``, or the time of the timeline's last entry when that
    is later (a clock stepped back, or another process that stamped later
    committed first), so that within a timeline time never runs backwards.
    One statement per chunk of timelines: a fan-out advances a hundred heads
    in one call into SQLite.
    """
    first: dict[str, int] = {}
    stamps: dict[str, float] = {}
    pairs = list(counts.items())
    chunk = IN_CHUNK // 3  # three parameters per timeline
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        marks = ", ".join(["(?, ?, ?)"] * len(part))
        heads = conn.execute(
            f"INSERT INTO timelines (id, last_seq, last_at) VALUES {marks} ON CONFLICT (id)"
            " DO UPDATE SET last_seq = last_seq + excluded.last_seq,"
            " last_at = max(last_at, excluded.last_at) RETURNING id, last_seq, last_at",
            [value for timeline_id, count in part for value in (timeline_id, count, now)],
        ).fetchall()
        for timeline_id, last, last_at in heads:
            first[timeline_id] = last - counts[timeline_id] + 1
            stamps[timeline_id] = last_at
    return first, stamps


def _merge(conn: sqlite3.Connection, after: str, rows: int) -> tuple[int, str]:
    """Move the staged entries of the timelines after the id ``after`` (about
    ``rows`` entries, whole timelines) from ``recent`` to ``entries``, in key order.

    Returns how many moved and the id the next slice starts after: "" when this
    slice reached the end of ``recent`` (timeline ids are never empty).
    """
    bound = conn.execute(
        "SELECT timeline_id FROM recent WHERE timeline_id > ?"
        " ORDER BY timeline_id, seq LIMIT 1 OFFSET ?",
        (after, rows),
    ).fetchone()
    args: tuple[str, ...]
    if bound is None:
        where, args = "timeline_id > ?", (after,)
    else:
        where, args = "timeline_id > ? AND timeline_id <= ?", (after, bound[0])
    conn.execute(
        f"INSERT INTO entries ({_ENTRY_COLUMNS}) SELECT {_ENTRY_COLUMNS} FROM recent"
        f" WHERE {where} ORDER BY timeline_id, seq",
        args,
    )
    moved = conn.execute(f"DELETE FROM recent WHERE {where}", args).rowcount
    return moved, "" if bound is None else bound[0]


def _appended(results: list[tuple[bool, Any]]) -> int:
    """How many entries the append jobs of a commit wrote."""
    return sum(
        len(value.entries)
        for ok, value in results
        if ok and isinstance(value, Batch) and not value.replayed
    )


def _release_bodies(conn: sqlite3.Connection, body_ids: Iterable[int]) -> None:
    for body_id, count in Counter(body_ids).items():
        conn.execute("UPDATE bodies SET refs = refs - ? WHERE id = ?", (count, body_id))
        conn.execute("DELETE FROM bodies WHERE id = ? AND refs <= 0", (body_id,))


def _prefix_range(prefix: str) -> tuple[str, str]:
    """Bounds ``low <= id < high`` of the ids that start with ``prefix``."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)
