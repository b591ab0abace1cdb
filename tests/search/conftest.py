"""Fixtures of the IM search tests: a Context over a store indexed for search,
on every backend — SQLite always, PostgreSQL when a server answers at
``TIDINGS_TEST_PG`` (and always under ``CI=true``, where its absence fails).

As in ``tests/timeline``, PostgreSQL tests share one throwaway database per
session, migrated once, with its data tables emptied before each test.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from search_harness import Clock, Users

from tidings.im import Context, IMSettings, accounts
from tidings.im.search import SEARCH
from tidings.timeline import open_store

T = TypeVar("T")

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PASSWORD = "correct horse"
# Low Argon2 costs keep the suite fast; production keeps the library defaults.
FAST_HASH = {"password_time_cost": 1, "password_memory_kib": 1024}


def _cannot_run(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def _aside(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a private loop (session set-up must not touch the test's)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _clear_statement(url: str) -> str:
    """Migrate, then DELETE every table that is empty right after migrating."""
    await (await open_store(url, purge_interval=None, search=SEARCH)).close()
    conn = await asyncpg.connect(url, timeout=10)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables"
            " WHERE schemaname NOT LIKE 'pg\\_%' AND schemaname <> 'information_schema'"
        )
        empty = [n for (n,) in tables if not await conn.fetchval(f"SELECT EXISTS (TABLE {n})")]
        return "".join(f"DELETE FROM {name};" for name in empty)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def search_pg() -> Iterator[tuple[str, str]]:
    """(url, clear statement) of this session's throwaway database."""
    dsn = os.environ.get("TIDINGS_TEST_PG", DEFAULT_PG_DSN)
    name = f"tidings_search_{os.getpid()}"
    try:
        _aside(
            _admin(dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        _cannot_run(f"cannot use PostgreSQL at {dsn} (set TIDINGS_TEST_PG): {exc!r}")
    url = urlunsplit(urlsplit(dsn)._replace(path="/" + name))
    try:
        yield url, _aside(_clear_statement(url))
    finally:
        _aside(_admin(dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgres"])
async def ctx(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[Context]:
    settings = IMSettings(write_fanout_max=4, **FAST_HASH)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'im.db'}"
    else:
        url, clear = request.getfixturevalue("search_pg")
        await _admin(url, clear)
    store = await open_store(url, clock=clock, purge_interval=None, search=SEARCH)
    try:
        yield Context(store, settings)
    finally:
        await store.close()


@pytest.fixture
def users(ctx: Context) -> Users:
    """Register users by name (keyword arguments are profile fields)."""

    async def register(*names: str, **profile: Any) -> list[str]:
        for name in names:
            await accounts.register(ctx, name, PASSWORD, **profile)
        return list(names)

    return register
