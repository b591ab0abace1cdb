"""The naive reference layout the store is compared with.

The same rows the store writes, laid out the obvious way: one plain table keyed
by (timeline, seq), the full message copied into every row, written with the
plain driver's ``executemany``, one transaction per message. (It keeps no
client-id index, so it does a little less than the store: no idempotency.) Sequence numbers
come from a counter in this process (the reference measures the writes, not the
allocation).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from .workload import Fanout

Row = tuple[str, int, bytes, float, str | None, str | None, int | None]


class NaiveWriter(Protocol):
    async def open(self) -> None: ...

    async def write(self, plan: Sequence[Fanout]) -> None:
        """Write every fan-out of ``plan``, each in its own transaction."""

    async def close(self) -> None: ...


class _Rows:
    """Turns fan-outs into rows, numbering each timeline's entries from 1."""

    def __init__(self) -> None:
        self._last: defaultdict[str, int] = defaultdict(int)

    def of(self, fanout: Fanout) -> list[Row]:
        body = orjson.dumps(fanout.message)
        now = time.time()
        head = self._next(fanout.history)
        rows: list[Row] = [(fanout.history, head, body, now, fanout.client_id, None, None)]
        for inbox in fanout.inboxes:
            rows.append((inbox, self._next(inbox), body, now, None, fanout.history, head))
        return rows

    def _next(self, timeline_id: str) -> int:
        seq = self._last[timeline_id] = self._last[timeline_id] + 1
        return seq


_INSERT = (
    "INSERT INTO naive_entries"
    " (timeline_id, seq, message, created_at, client_id, ref_timeline, ref_seq) VALUES ({})"
)


class NaiveSQLite:
    """Plain ``sqlite3``: WAL, the same ``synchronous`` and page cache as the store,
    one connection, one transaction per message (SQLite has one writer at a time,
    so more connections would only queue on its lock)."""

    def __init__(self, path: str, *, synchronous: str, cache_kib: int) -> None:
        self._path = path
        self._pragmas = (
            "PRAGMA journal_mode = WAL",
            f"PRAGMA synchronous = {synchronous}",
            f"PRAGMA cache_size = -{cache_kib}",
        )
        self._conn: sqlite3.Connection | None = None
        self._rows = _Rows()

    async def open(self) -> None:
        conn = self._conn = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False
        )
        for pragma in self._pragmas:
            conn.execute(pragma)
        conn.execute(
            "CREATE TABLE naive_entries (timeline_id TEXT NOT NULL, seq INTEGER NOT NULL,"
            " message BLOB NOT NULL, created_at REAL NOT NULL, client_id TEXT,"
            " ref_timeline TEXT, ref_seq INTEGER, PRIMARY KEY (timeline_id, seq))"
        )

    async def write(self, plan: Sequence[Fanout]) -> None:
        await asyncio.to_thread(self._write, plan)

    def _write(self, plan: Sequence[Fanout]) -> None:
        assert self._conn is not None
        conn, insert = self._conn, _INSERT.format("?, ?, ?, ?, ?, ?, ?")
        for fanout in plan:
            conn.execute("BEGIN")
            conn.executemany(insert, self._rows.of(fanout))
            conn.execute("COMMIT")

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class NaivePostgres:
    """Plain ``asyncpg``: ``writers`` connections writing concurrently (PostgreSQL
    takes many writers at once), one transaction per message."""

    def __init__(self, dsn: str, *, writers: int) -> None:
        self._dsn = dsn
        self._writers = writers
        self._pool: Any = None
        self._rows = _Rows()

    async def open(self) -> None:
        import asyncpg

        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=self._writers, max_size=self._writers
        )
        await self._pool.execute(
            "CREATE TABLE naive_entries (timeline_id TEXT NOT NULL, seq BIGINT NOT NULL,"
            " message BYTEA NOT NULL, created_at DOUBLE PRECISION NOT NULL, client_id TEXT,"
            " ref_timeline TEXT, ref_seq BIGINT, PRIMARY KEY (timeline_id, seq))"
        )

    async def write(self, plan: Sequence[Fanout]) -> None:
        pending = iter(plan)
        insert = _INSERT.format("$1, $2, $3, $4, $5, $6, $7")

        async def writer() -> None:
            for fanout in pending:
                rows = self._rows.of(fanout)
                async with self._pool.acquire() as conn, conn.transaction():
                    await conn.executemany(insert, rows)

        await asyncio.gather(*(writer() for _ in range(self._writers)))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
