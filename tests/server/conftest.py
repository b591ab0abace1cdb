"""Fixtures of the server tests: a real server on a free port over a real store.

``make_server(**settings)`` starts one in-process (aiohttp's runner, a SQLite
file in the test's temp dir, low Argon2 costs, a fake clock for heartbeats and
rate limits); ``server`` is one with default limits. Its ``user(name)`` returns
a registered, logged-in :class:`~tidings.client.Client`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

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


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_server(
    request: pytest.FixtureRequest, make_server: Callable[..., Awaitable[Harness]]
) -> AsyncIterator[Harness]:
    """A server on each backend: SQLite always, PostgreSQL when there is one
    (always under CI=true)."""
    if request.param == "sqlite":
        yield await make_server()
        return
    database = request.getfixturevalue("pg_database")
    await database.empty()
    yield await make_server(db=database.url)
