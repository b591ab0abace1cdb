"""Fixtures of the timeline conformance suite.

Every contract test takes ``store_factory`` and so runs once per backend:
SQLite always (a file in the test's temp dir), PostgreSQL through the shared
``pg_database`` fixture (tests/conftest.py: required under ``CI=true``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from timeline_harness import FakeClock, StoreFactory

from tidings.timeline import Store
from tidings.timeline import sqlite as sqlite_backend


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "sqlite-merging", "postgres"])
async def store_factory(
    request: pytest.FixtureRequest,
    tmp_path: Any,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[StoreFactory]:
    """``sqlite-merging`` shrinks SQLite's staging table to a few rows, so that
    entries move from ``recent`` to ``entries`` during almost every test."""
    if request.param.startswith("sqlite"):
        if request.param == "sqlite-merging":
            monkeypatch.setattr(sqlite_backend, "STAGED_ROWS", 3)
            monkeypatch.setattr(sqlite_backend, "IDLE_STAGED_ROWS", 1)
            monkeypatch.setattr(sqlite_backend, "MERGE_SLICES", 2)
        url = f"sqlite:///{tmp_path / 'timeline.db'}"
    else:
        database = request.getfixturevalue("pg_database")
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
