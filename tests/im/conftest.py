"""Fixtures of the IM domain tests: a Context over a fresh store (each test runs
on SQLite and on PostgreSQL), a clock that tests move by hand, and the
deliveries the context published."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from im_harness import FAST_HASH, PASSWORD, Clock, Users

from tidings.im import Context, Delivery, IMSettings, accounts
from tidings.timeline import open_store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings() -> IMSettings:
    return IMSettings(write_fanout_max=4, **FAST_HASH)


@pytest.fixture
def published() -> list[Delivery]:
    return []


@pytest.fixture(params=["sqlite", "postgres"])
async def ctx(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    clock: Clock,
    settings: IMSettings,
    published: list[Delivery],
) -> AsyncIterator[Context]:
    """A context over an empty store: SQLite always, PostgreSQL through the shared
    ``pg_database`` fixture (required under CI=true)."""
    url = f"sqlite:///{tmp_path / 'im.db'}"
    if request.param == "postgres":
        database = request.getfixturevalue("pg_database")
        await database.empty()
        url = database.url
    store = await open_store(
        url,
        clock=clock,
        retention={"inbox": settings.inbox_ttl},
        purge_interval=None,
    )
    try:
        yield Context(store, settings, publish=published.append)
    finally:
        await store.close()


@pytest.fixture
def users(ctx: Context) -> Users:
    """Register users by name; returns their names."""

    async def register(*names: str) -> list[str]:
        for name in names:
            await accounts.register(ctx, name, PASSWORD)
        return list(names)

    return register
