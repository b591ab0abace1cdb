"""Fixtures of the timeline conformance suite.

Every contract test takes ``store_factory`` and so runs once per backend:
SQLite always (a file in the test's temp dir), PostgreSQL when a server answers
at ``TIDINGS_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
Under ``CI=true`` a PostgreSQL test that cannot run fails instead of skipping,
so CI never silently drops half of the suite.

PostgreSQL tests use one throwaway database per session (``tidings_test_<pid>``),
migrated once; every test starts with its data tables emptied (a DELETE is far
cheaper than dropping and re-migrating the schema for each test).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from timeline_harness import FakeClock, StoreFactory

from tidings.timeline import Store, open_store

T = TypeVar("T")

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Long enough for a loaded CI machine, short enough that a missing server is
# reported quickly.
PG_CONNECT_TIMEOUT_S = 10


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def cannot_run(reason: str) -> None:
    """Skip, or fail under CI where every backend must run."""
    if in_ci():
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "postgres"])
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Any, clock: FakeClock
) -> AsyncIterator[StoreFactory]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'timeline.db'}"
    else:
        database: PgDatabase = request.getfixturevalue("pg_database")
        await database.empty()
        url = database.url
    factory = StoreFactory(request.param, url, clock)
    try:
        yield factory
    finally:
        await factory.close_all()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    """A store on an empty database, with the fake clock and no background purge."""
    return await store_factory()
