"""Helpers of the IM domain tests (fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from tidings.im import Context, accounts, sync

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


Users = Callable[..., Coroutine[Any, Any, list[str]]]


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
