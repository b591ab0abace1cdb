"""Fixtures of the server tests: a real server on a free port over a real store.

``make_server(**settings)`` starts one in-process (aiohttp's runner, a SQLite
file in the test's temp dir, low Argon2 costs, a fake clock for heartbeats and
rate limits); ``server`` is one with default limits. Its ``user(name)`` returns
a registered, logged-in :class:`~tidings.client.Client`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from server_harness import Harness, start_harness


@pytest.fixture
async def make_server(tmp_path: Any) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    started: list[Harness] = []

    async def make(**overrides: Any) -> Harness:
        harness = await start_harness(tmp_path / f"server{len(started)}", **overrides)
        started.append(harness)
        return harness

    yield make
    for harness in reversed(started):
        await harness.stop()


@pytest.fixture
async def server(make_server: Callable[..., Awaitable[Harness]]) -> Harness:
    return await make_server()


# -- PostgreSQL: the chat tests run against it too --------------------------------------

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
_databases = itertools.count()


def _cannot_run(reason: str) -> None:
    """Skip, or fail under CI=true, where PostgreSQL must be there."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.asynccontextmanager
async def pg_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    if importlib.util.find_spec("tidings.timeline.postgres") is None:
        _cannot_run("the PostgreSQL backend (tidings.timeline.postgres) is not present")
    dsn = os.environ.get("TIDINGS_TEST_PG", DEFAULT_PG_DSN)
    name = f"tidings_server_{os.getpid()}_{next(_databases)}"
    try:
        admin = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        _cannot_run(f"no PostgreSQL at {dsn} (set TIDINGS_TEST_PG): {exc!r}")
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield urlunsplit(urlsplit(dsn)._replace(path="/" + name))
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_server(
    request: pytest.FixtureRequest, make_server: Callable[..., Awaitable[Harness]]
) -> AsyncIterator[Harness]:
    """A server on each backend: SQLite always, PostgreSQL when there is one
    (always under CI=true)."""
    if request.param == "sqlite":
        yield await make_server()
        return
    async with pg_database() as url:
        harness = await make_server(db=url)
        yield harness
        await harness.stop()
