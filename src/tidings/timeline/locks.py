"""Named locks (:meth:`Store.lock`): one holder per key among the stores of a
database.

SQLite serves one process, so its locks are that process's: one
:class:`asyncio.Lock` per database file and key, shared by every store open on
the file. PostgreSQL's are advisory locks, which every node sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from ..errors import Unavailable

# How long a PostgreSQL lock is waited for before the step gives up.
ADVISORY_WAIT_S = 30.0

# Held weakly: a lock lives while some task holds or waits for it.
_LOCAL: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()


@contextlib.asynccontextmanager
async def local(database: str, key: str) -> AsyncIterator[None]:
    """Hold ``key`` of ``database`` (a path) in this process."""
    lock = _LOCAL.get((database, key))
    if lock is None:
        lock = _LOCAL[database, key] = asyncio.Lock()
    async with lock:
        yield


def advisory_id(key: str) -> int:
    """The advisory lock id of ``key``: 64 bits of its BLAKE2b hash."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), signed=True)


@contextlib.asynccontextmanager
async def advisory(
    connection: Callable[[], AbstractAsyncContextManager[Any]],
    slots: asyncio.Semaphore,
    key: str,
) -> AsyncIterator[None]:
    """Hold ``key`` as a PostgreSQL session advisory lock, on a pooled
    connection kept meanwhile; at most ``slots`` are held (or waited for) at
    once, so that the holders' own work always finds a free connection.

    The lock goes with the session: a node that dies releases it, and so does
    a connection given back to the pool (asyncpg resets it with
    ``pg_advisory_unlock_all()``), whatever interrupted the holder.
    ``connection`` turns database failures into Tidings errors; the holder's
    own errors pass through unchanged.

    Raises:
        Unavailable: the lock was held elsewhere for ``ADVISORY_WAIT_S``.
    """
    import asyncpg

    lock_id = advisory_id(key)
    async with slots, connection() as conn:
        try:
            # One round trip (no arguments: a simple query may hold two
            # statements); the setting lasts until the pool resets the connection.
            await conn.execute(
                f"SET lock_timeout = {round(ADVISORY_WAIT_S * 1000)};"
                f" SELECT pg_advisory_lock({lock_id})"
            )
        except asyncpg.LockNotAvailableError:
            raise Unavailable(f"{key} is busy elsewhere; try again") from None
        failure: Exception | None = None
        try:
            yield
        except Exception as exc:  # the holder's, not the storage's: raised as it is, below
            failure = exc
        finally:
            lost = (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError)
            with contextlib.suppress(*lost):  # a dead connection took the lock with it
                await conn.execute("SELECT pg_advisory_unlock($1)", lock_id)
    if failure is not None:
        raise failure
