"""A real Tidings server for tests, started in-process on a free port."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tidings.client import Client, Live
from tidings.config import Settings
from tidings.server import create_app
from tidings.server.runner import open_server_store
from tidings.server.state import STATE_KEY, ServerState
from tidings.timeline import Store

PASSWORD = "correct horse battery"
# Low Argon2 costs keep registering and logging in fast; never in production.
TEST_SETTINGS = {
    "sqlite_synchronous": "NORMAL",
    "password_time_cost": 1,
    "password_memory_kib": 1024,
}


@dataclass
class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Harness:
    url: str
    settings: Settings
    store: Store
    runner: web.AppRunner
    clock: FakeClock
    clients: list[Client] = field(default_factory=list)
    lives: list[Live] = field(default_factory=list)
    stopped: bool = False

    @property
    def state(self) -> ServerState:
        return self.runner.app[STATE_KEY]

    def client(self) -> Client:
        client = Client(self.url)
        self.clients.append(client)
        return client

    async def user(self, name: str, *, register: bool = True, device: str = "") -> Client:
        """A logged-in client for ``name`` (registered first unless told not to)."""
        client = self.client()
        if register:
            await client.register(name, PASSWORD)
        await client.login(name, PASSWORD, device)
        return client

    async def live(self, client: Client, **options: Any) -> Live:
        live = await client.live(**options).start()
        self.lives.append(live)
        return live

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for live in self.lives:
            await live.close()
        for client in self.clients:
            await client.close()
        await self.runner.cleanup()
        await self.store.close()


async def start_harness(data_dir: Path, **overrides: Any) -> Harness:
    settings = Settings(data_dir=str(data_dir), **{**TEST_SETTINGS, **overrides})
    store = await open_server_store(settings)
    clock = FakeClock()
    runner = web.AppRunner(create_app(settings, store, clock=clock), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return Harness(f"http://127.0.0.1:{port}", settings, store, runner, clock)


async def until(predicate: Any, timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` is true (polling the loop, not sleeping a set time)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)
