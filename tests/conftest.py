"""Fixtures shared by every test package.

PostgreSQL: tests that take ``pg_database`` run against a throwaway database
(``tidings_test_<pid>``) created once per session and migrated once; each test
empties its data tables first (far cheaper than re-migrating). The server is
``TIDINGS_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
Outside CI, a missing server skips those tests with the reason; under
``CI=true`` they fail, so CI never silently drops the PostgreSQL half.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from required import cannot_run
from tidings.timeline import open_store

T = TypeVar("T")

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Long enough for a loaded CI machine, short enough that a missing server is
# reported quickly.
PG_CONNECT_TIMEOUT_S = 10


def run_aside(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a private event loop in another thread (for session set-up,
    which must not touch the loop of the test being set up)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=PG_CONNECT_TIMEOUT_S)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@dataclass(frozen=True)
class PgDatabase:
    """The session's throwaway database, and the statement that empties it."""

    url: str
    clear: str

    async def empty(self) -> None:
        conn = await asyncpg.connect(self.url, timeout=PG_CONNECT_TIMEOUT_S)
        try:
            await conn.execute(self.clear)
        finally:
            await conn.close()


async def _migrate_and_list_data_tables(url: str) -> list[str]:
    """Open a store once (applying the migrations), then name the tables that are
    empty after migrating: the data tables. Tables holding rows already (the
    migration ledger) are left alone between tests."""
    await (await open_store(url, purge_interval=None)).close()
    conn = await asyncpg.connect(url, timeout=PG_CONNECT_TIMEOUT_S)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables"
            " WHERE schemaname NOT LIKE 'pg\\_%' AND schemaname <> 'information_schema'"
        )
        return [
            name for (name,) in tables if not await conn.fetchval(f"SELECT EXISTS (TABLE {name})")
        ]
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[PgDatabase]:
    """A throwaway PostgreSQL database for this session, migrated."""
    if importlib.util.find_spec("tidings.timeline.postgres") is None:
        cannot_run("postgres backend not present")
    dsn = os.environ.get("TIDINGS_TEST_PG", DEFAULT_PG_DSN)
    name = f"tidings_test_{os.getpid()}"
    try:
        run_aside(
            _admin(dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        cannot_run(f"cannot use PostgreSQL at {dsn} (set TIDINGS_TEST_PG): {exc!r}")
    url = urlunsplit(urlsplit(dsn)._replace(path="/" + name))
    try:
        tables = run_aside(_migrate_and_list_data_tables(url))
        yield PgDatabase(url, "".join(f"DELETE FROM {table};" for table in tables))
    finally:
        run_aside(_admin(dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
