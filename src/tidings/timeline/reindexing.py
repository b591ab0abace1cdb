"""Rebuilding the search index from what is stored (:meth:`Store.reindex`):
the order of the work, shared by both backends.

Index rows are written in the same commit as the entries and records they
index, so entries stored before a store was opened with a
:class:`~tidings.timeline.SearchConfig` (or before the search migration ran),
and rows written by other term rules, stay as they are until rebuilt. A rebuild
visits, for each timeline kind the config indexes, the entries of its
timelines in key order ``(timeline id, seq)``, a *batch* of at most
``ENTRY_PAGE`` entries at a time (several small timelines, or a part of a long
one). Each batch covers a key interval ``start < key <= end`` and is one write
transaction: it reads the entries of the interval as they are at that moment
and replaces the interval's index rows with exactly the rows an append (or the
last update) would have written for them: updated entries by their current
text, recalled ones not at all. Then it removes the rows of timelines whose
kind is no longer indexed, and rebuilds ``search_meta`` the same way, by id
intervals of ``META_PAGE`` records of each configured metadata kind.

Why this stays right while the server writes: index rows only ever change in
the transaction that changes what they index. Before a batch's transaction, a
write in its interval is the writer's to index; inside it, the batch sees the
interval as committed and replaces its rows wholesale (the backends make
sure no write of the interval is half done meanwhile: the SQLite writer holds
the database's write lock, PostgreSQL locks the interval's entries); after
it, writes index themselves again. An entry appended during a rebuild is
therefore indexed once, by its append or by the batch, never both and never
neither. Rows already right are left alone, so a second rebuild writes
nothing (``ReindexCounts.rewritten == 0``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from .search import SearchConfig

# Entries per write transaction: a transaction indexes about this many in a
# few tens of milliseconds, so writers queued behind it wait no longer than
# that; the entries read for it are held in memory (1,000 messages of at most
# 64 KiB).
ENTRY_PAGE = 1000
# Metadata records per write transaction.
META_PAGE = 1000
# A key in entry order: (timeline id, seq).
Key = tuple[str, int]
# What one batch of metadata did: (records indexed, rows changed, the last id
# covered or None once the kind is done).
MetaStep = tuple[int, int, str | None]


@dataclass(frozen=True, slots=True)
class ReindexCounts:
    """What :meth:`Store.reindex` did so far.

    Attributes:
        timelines: timelines of indexed kinds visited (those holding entries).
        entries: entries indexed (those whose message the config indexes).
        meta: metadata records indexed.
        rewritten: index rows added, replaced or removed; 0 when the index
            was already what the stored entries and records make it.
    """

    timelines: int = 0
    entries: int = 0
    meta: int = 0
    rewritten: int = 0


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What one batch of entries did: the timelines it read, in key order,
    how many entries it indexed, how many index rows it changed, and the last
    key it covered."""

    timelines: tuple[str, ...]
    entries: int
    rewritten: int
    end: Key


class Steps(Protocol):
    """A backend's part of a rebuild."""

    async def empty(self) -> int:
        """Drop the whole entry index at once (``full``); returns rows removed."""

    async def entries(self, start: Key, stop: Key, limit: int) -> Rebuilt:
        """Rebuild the interval ``start < key <= end`` in one transaction, where
        ``end`` is the key of the ``limit``-th entry after ``start``, or ``stop``
        when there are fewer."""

    async def drop_entries(self, low: str, high: str | None) -> int:
        """Remove the index rows of the timelines with ``low <= id < high``
        (None: no upper bound); returns how many."""

    async def meta(self, low: str, after: str, high: str, limit: int) -> MetaStep:
        """Rebuild the ``search_meta`` rows of the ids ``low <= id < high``
        past ``after``, up to the ``limit``-th record, in one transaction.
        Returns (records indexed, rows changed, the last id covered or None
        once the range is done)."""

    async def drop_meta(self, low: str, high: str | None) -> int:
        """Remove the ``search_meta`` rows with ``low <= id < high``; returns how many."""


Progress = Callable[[ReindexCounts], None]


def prefix_range(kind: str) -> tuple[str, str]:
    """The ids of a kind: ``kind + ":" <= id < kind + ";"``."""
    return kind + ":", kind + ";"


def outside(kinds: Iterable[str]) -> list[tuple[str, str | None]]:
    """The id ranges ``(low, high)`` that belong to none of ``kinds`` (the
    ranges of distinct kinds never overlap: a kind holds no colon)."""
    ranges = sorted(prefix_range(kind) for kind in set(kinds))
    gaps: list[tuple[str, str | None]] = []
    low = ""
    for start, stop in ranges:
        if low < start:
            gaps.append((low, start))
        low = stop
    gaps.append((low, None))
    return gaps


async def run(
    steps: Steps, config: SearchConfig, *, full: bool, progress: Progress | None
) -> ReindexCounts:
    """Rebuild the index: entries kind by kind, then metadata (see the module
    docstring); ``progress`` is called with the counts after every batch."""
    counts = ReindexCounts()

    def advance(**more: int) -> None:
        nonlocal counts
        counts = dataclasses.replace(
            counts, **{name: getattr(counts, name) + value for name, value in more.items()}
        )
        if progress is not None:
            progress(counts)

    if full:
        advance(rewritten=await steps.empty())
    for kind in sorted(set(config.kinds)):
        low, high = prefix_range(kind)
        start, stop = (low, 0), (high, -1)  # every seq is above 0; none is below 0
        last: str | None = None
        while start != stop:
            batch = await steps.entries(start, stop, ENTRY_PAGE)
            seen = len(batch.timelines)
            if seen and batch.timelines[0] == last:
                seen -= 1  # a long timeline goes on from the previous batch
            if batch.timelines:
                last = batch.timelines[-1]
            advance(timelines=seen, entries=batch.entries, rewritten=batch.rewritten)
            start = batch.end
    for low, maybe_high in outside(config.kinds):
        advance(rewritten=await steps.drop_entries(low, maybe_high))
    for kind in sorted(config.meta):
        low, high = prefix_range(kind)
        after: str | None = ""  # ids are never empty
        while after is not None:
            indexed, rewritten, after = await steps.meta(low, after, high, META_PAGE)
            advance(meta=indexed, rewritten=rewritten)
    for low, maybe_high in outside(config.meta):
        advance(rewritten=await steps.drop_meta(low, maybe_high))
    return counts
