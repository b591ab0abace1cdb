"""Fixtures of the IM search tests: a Context over a store indexed for search,
on every backend — SQLite always, PostgreSQL when a server answers at
``TIDINGS_TEST_PG`` (and always under ``CI=true``, where its absence fails).

PostgreSQL tests use the shared ``pg_database`` fixture (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from search_harness import Clock, Users

from tidings.im import Context, IMSettings, accounts
from tidings.im.search import SEARCH
from tidings.timeline import open_store

PASSWORD = "correct horse"
# Low Argon2 costs keep the suite fast; production keeps the library defaults.
FAST_HASH = {"password_time_cost": 1, "password_memory_kib": 1024}


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
        database = request.getfixturevalue("pg_database")
        await database.empty()
        url = database.url
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
