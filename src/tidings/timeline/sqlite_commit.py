"""Group commit for the SQLite writer thread.

The writer takes every job queued while the previous commit ran and runs them
in one transaction (:func:`commit`); the callers' futures are resolved on their
own event loops once it is done (:func:`deliver`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from ..errors import TidingsError, Unavailable

log = logging.getLogger("tidings.timeline.sqlite")

# A write job: what to run on the writer's connection, and whom to tell.
Job = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def commit(conn: sqlite3.Connection, jobs: list[Job]) -> list[tuple[bool, Any]]:
    """Run ``jobs`` in one transaction; returns (ok, result or exception) per job.

    The jobs first run side by side. When one raises, the transaction is rolled
    back and, if there were others, run again with each job in a savepoint so
    that only the failing one is undone. Running a job twice is harmless: jobs
    touch nothing but the database.
    """
    results = _transaction(conn, jobs, isolated=False)
    if results is None:
        results = _transaction(conn, jobs, isolated=True)
    assert results is not None
    return results


def _transaction(
    conn: sqlite3.Connection, jobs: list[Job], *, isolated: bool
) -> list[tuple[bool, Any]] | None:
    """One attempt of :func:`commit`. Not ``isolated``: None when a job of
    several failed (everything is rolled back)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        log.error("SQLite could not start a write: %s", exc)
        error = Unavailable("the database is busy or unavailable; retry")
        return [(False, error)] * len(jobs)
    results: list[tuple[bool, Any]] = []
    for fn, _, _ in jobs:
        if isolated:
            conn.execute("SAVEPOINT job")
        try:
            result = fn(conn)
        except Exception as exc:
            if not isolated:
                conn.execute("ROLLBACK")
                return [(False, _public(exc))] if len(jobs) == 1 else None
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            results.append((False, _public(exc)))
        else:
            if isolated:
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


def deliver(jobs: list[Job], results: list[tuple[bool, Any]]) -> None:
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
