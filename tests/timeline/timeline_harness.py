"""The test doubles and the store factory of the timeline conformance suite."""

from __future__ import annotations

from typing import Any

from tidings.timeline import Store, open_store

# A fixed, round starting time: every backend must store ``created_at`` exactly
# as the store's clock read it.
CLOCK_START = 1_700_000_000.0
DAY = 86_400.0


class FakeClock:
    """The store's clock in tests: time moves only when the test says so."""

    def __init__(self, now: float = CLOCK_START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StoreFactory:
    """Opens stores on one backend's database; closes what is left at teardown.

    Every store opened by one factory shares the same database, so a second call
    is "another process on the same data" and ``reopen`` is a restart.
    """

    def __init__(self, backend: str, url: str, clock: FakeClock) -> None:
        self.backend = backend
        self.url = url
        self.clock = clock
        self._open: list[Store] = []

    async def __call__(self, **options: Any) -> Store:
        options.setdefault("clock", self.clock)
        options.setdefault("purge_interval", None)
        store = await open_store(self.url, **options)
        self._open.append(store)
        return store

    async def close(self, store: Store) -> None:
        self._open.remove(store)
        await store.close()

    async def reopen(self, store: Store, **options: Any) -> Store:
        """Close ``store`` and open a fresh one on the same database (a restart)."""
        await self.close(store)
        return await self(**options)

    async def close_all(self) -> None:
        while self._open:
            await self._open.pop().close()
