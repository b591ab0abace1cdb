"""Fixtures of the IM domain tests: a Context over a fresh store, a clock that
tests move by hand, and the deliveries the context published."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from tidings.im import Context, Delivery, IMSettings, accounts, sync
from tidings.timeline import open_store

PASSWORD = "correct horse"
# Low Argon2 costs keep the suite fast; production keeps the library defaults.
FAST_HASH = {"password_time_cost": 1, "password_memory_kib": 1024}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings() -> IMSettings:
    return IMSettings(write_fanout_max=4, **FAST_HASH)


@pytest.fixture
def published() -> list[Delivery]:
    return []


@pytest.fixture
async def ctx(
    tmp_path: Path, clock: Clock, settings: IMSettings, published: list[Delivery]
) -> AsyncIterator[Context]:
    store = await open_store(
        f"sqlite:///{tmp_path / 'im.db'}",
        clock=clock,
        retention={"inbox": settings.inbox_ttl},
        purge_interval=None,
    )
    try:
        yield Context(store, settings, publish=published.append)
    finally:
        await store.close()


Users = Callable[..., Coroutine[Any, Any, list[str]]]


@pytest.fixture
def users(ctx: Context) -> Users:
    """Register users by name; returns their names."""

    async def register(*names: str) -> list[str]:
        for name in names:
            await accounts.register(ctx, name, PASSWORD)
        return list(names)

    return register


async def device(ctx: Context, user: str) -> str:
    """Log ``user`` in on a new device; returns the device id."""
    return (await accounts.login(ctx, user, PASSWORD)).device


async def drain(ctx: Context, user: str, device_id: str) -> list[dict[str, Any]]:
    """Sync a device to the end of its inbox, confirming as a client would."""
    events: list[dict[str, Any]] = []
    while True:
        result = await sync.sync(ctx, user, device_id, limit=50)
        events += result.events
        await sync.confirm(ctx, user, device_id, result.cursor)
        if not result.has_more:
            return events


def texts(events: list[dict[str, Any]]) -> list[str]:
    """The texts of the message events, in order."""
    return [
        e["message"]["text"]
        for e in events
        if e["type"] == "message" and e["message"]["kind"] == "text"
    ]
