"""What every IM action works with: the store, the settings, the clock, publish."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import NotFound
from ..timeline import Store
from . import names
from .events import Delivery, Publish
from .settings import IMSettings

# Metadata lists are read in pages of this size (the store's largest page).
RECORD_PAGE = 1000
# The known-users and known-DMs caches start over when they reach this size
# (about 10 MB each): a name dropped costs one read at its next use.
KNOWN_MAX = 100_000


def remember(known: set[str], name: str) -> None:
    """Add ``name`` to a cache of names known to exist, bounded by ``KNOWN_MAX``."""
    if len(known) >= KNOWN_MAX:
        known.clear()
    known.add(name)


def _discard(_: Delivery) -> None:
    pass


@dataclass(slots=True)
class Context:
    store: Store
    settings: IMSettings = field(default_factory=IMSettings)
    publish: Publish = _discard
    # Users and DM conversations are never deleted, so "exists" answers can be
    # cached for the life of the process, on every node alike (see remember).
    known_users: set[str] = field(default_factory=set)
    known_dms: set[str] = field(default_factory=set)
    # Member lists of read-fan-out groups, used only to address pushes (an
    # optimisation: sync is the truth), so they may be a few seconds stale.
    # gid -> (read at, members)
    push_audiences: dict[str, tuple[float, tuple[str, ...]]] = field(default_factory=dict)
    # Member lists of write-fan-out groups by roster version (exact: the
    # version is in the group record read on every send).
    # gid -> (roster version, members)
    rosters: dict[str, tuple[object, tuple[str, ...]]] = field(default_factory=dict)
    # Direct messages recently allowed (see access.check_dm_allowed):
    # recipient -> sender -> allowed until (store clock)
    dm_allowed: dict[str, dict[str, float]] = field(default_factory=dict)
    # Read-modify-write steps (a group's membership) hold a lock per key
    # ("group:<gid>"): this process's first, so that one task per process
    # waits for the store's, which every node respects. Held weakly: a lock
    # lives while some coroutine holds or waits for it.
    _locks: weakref.WeakValueDictionary[str, asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary
    )

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """Hold ``key`` (e.g. ``group:<gid>``) on every node."""
        local = self._locks.get(key)
        if local is None:
            local = self._locks[key] = asyncio.Lock()
        async with local, self.store.lock(key):
            yield

    async def records(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        """Every metadata record whose id starts with ``prefix``, in id order,
        read in pages (a user's conversations, a group's members…)."""
        found: list[tuple[str, dict[str, Any]]] = []
        after: str | None = None
        while True:
            page = await self.store.find_meta(prefix, after=after, limit=RECORD_PAGE)
            found += page
            if len(page) < RECORD_PAGE:
                return found
            after = page[-1][0]

    def now(self) -> float:
        return self.store.clock()

    async def require_user(self, username: str) -> dict[str, Any] | None:
        """Check that ``username`` exists; returns its profile when it was read.

        Raises:
            NotFound: no such user.
        """
        if username in self.known_users:
            return None
        profile = await self.store.get_meta(f"user:{username}")
        if profile is None:
            raise NotFound(f"no user {username!r}", field="username")
        remember(self.known_users, username)
        return profile

    async def group_record(self, gid: str) -> dict[str, Any]:
        """The group's record.

        Raises:
            NotFound: no such group.
        """
        record = await self.store.get_meta(names.group(gid))
        if record is None:
            raise NotFound(f"no group {gid!r}", field="group")
        return record
