"""The measurements behind ``tidings bench timeline``.

One run, on a scratch database that is thrown away afterwards:

1. seed a few scan-probe timelines, then fan out messages until the store holds
   ``small`` entries;
2. probe: 64 concurrent single appends, a burst of fan-outs, newest-20 scans;
3. keep fanning out until the store holds ``entries`` entries, timing each
   window of the growth;
4. probe again, and scan random inboxes;
5. replay the same fan-outs through the naive layout (see :mod:`.naive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..timeline import Append, Direction, Store, open_store
from .naive import NaivePostgres, NaiveSQLite, NaiveWriter
from .progress import Progress
from .workload import Fanout, Workload

# The scan ratio compares the same timelines at both sizes, so that only the
# store's size differs: a fixed set, each holding more than one newest-20 page.
SCAN_PROBE_TIMELINES = 20
SCAN_PROBE_DEPTH = 25
# Histories the messages belong to; a tenth of the inboxes, like many groups of
# a hundred members drawn from one user base.
GROUPS_PER_INBOX = 0.1
# The growth is timed in this many windows, so that the rate near the end is
# seen apart from the average.
GROWTH_WINDOWS = 20
# The store's page cache per connection (see tidings.timeline.sqlite); the naive
# reference gets the same, so that only layout and batching differ.
NAIVE_CACHE_KIB = 64 * 1024


@dataclass(frozen=True, slots=True)
class Options:
    backend: str
    entries: int
    small: int
    inboxes: int
    fanout: int
    senders: int
    appenders: int
    appends: int
    probe_fanouts: int
    scans: int
    synchronous: str
    dsn: str
    seed: int


@dataclass(frozen=True, slots=True)
class Probe:
    """Figures taken at one store size."""

    stored: int
    append_per_s: float
    fanout_entries_per_s: float
    scan_p50_ms: float
    scan_p99_ms: float
    written: int


@dataclass(frozen=True, slots=True)
class Growth:
    """A timed growth from ``start`` entries: per window, the entries stored at its
    end and its rate in entries/s."""

    start: int
    windows: tuple[tuple[int, float], ...]
    entries: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.entries / self.seconds

    @property
    def last_rate(self) -> float:
        return self.windows[-1][1]


@dataclass(frozen=True, slots=True)
class Report:
    options: Options
    engine: str
    message_bytes: float
    small: Probe
    large: Probe
    growth: Growth
    naive: Growth
    inbox_scan_p50_ms: float
    inbox_scan_p99_ms: float
    disk_bytes: dict[str, int]


@dataclass(frozen=True, slots=True)
class _Scratch:
    store_url: str
    naive: NaiveWriter
    engine: str
    directory: Path | None


async def measure(options: Options, progress: Progress) -> Report:
    """Run the whole benchmark (see the module docstring)."""
    groups = max(1, int(options.inboxes * GROUPS_PER_INBOX))
    workload = Workload(
        inboxes=options.inboxes, fanout=options.fanout, groups=groups, seed=options.seed
    )
    async with _scratch(options) as scratch:
        extra = {"synchronous": options.synchronous} if options.backend == "sqlite" else {}
        store = await open_store(scratch.store_url, purge_interval=None, **extra)
        try:
            stored = await _seed_scan_probes(store, workload)
            fill = workload.fanouts(options.small - stored)
            await _fan_out(store, fill, options.senders)
            stored += _entries(fill)
            small = await _probe(store, workload, options, stored, progress)
            stored += small.written
            plan = workload.fanouts(options.entries - stored)
            growth = await _grow(
                lambda part: _fan_out(store, part, options.senders), plan, stored, "store", progress
            )
            stored += growth.entries
            large = await _probe(store, workload, options, stored, progress)
            inbox_scans = await _scan_times(store, workload.pick_inboxes(options.scans))
        finally:
            await store.close()
        naive = await _replay_naive(scratch.naive, fill, plan, progress)
        disk = _disk_bytes(scratch.directory)
    progress.clear()
    return Report(
        options=options,
        engine=scratch.engine,
        message_bytes=workload.mean_message_bytes(),
        small=small,
        large=large,
        growth=growth,
        naive=naive,
        inbox_scan_p50_ms=_percentile(inbox_scans, 50),
        inbox_scan_p99_ms=_percentile(inbox_scans, 99),
        disk_bytes=disk,
    )


# -- phases ---------------------------------------------------------------------


async def _seed_scan_probes(store: Store, workload: Workload) -> int:
    for n in range(SCAN_PROBE_TIMELINES):
        timeline_id = _scan_probe_id(n)
        await store.append_many(
            [Append(timeline_id, workload.message(timeline_id)) for _ in range(SCAN_PROBE_DEPTH)]
        )
    return SCAN_PROBE_TIMELINES * SCAN_PROBE_DEPTH


async def _probe(
    store: Store, workload: Workload, options: Options, stored: int, progress: Progress
) -> Probe:
    progress.show(f"probing at {stored:,} entries", force=True)
    probe_ids = [_scan_probe_id(n % SCAN_PROBE_TIMELINES) for n in range(options.scans)]
    scans = await _scan_times(store, probe_ids)
    appends = workload.appends(options.appenders * options.appends)
    append_seconds = await _append_concurrently(store, appends, options.appenders)
    fanouts = workload.fanouts(options.probe_fanouts * (options.fanout + 1))
    fanout_seconds = await _timed(_fan_out(store, fanouts, options.senders))
    return Probe(
        stored=stored,
        append_per_s=len(appends) / append_seconds,
        fanout_entries_per_s=_entries(fanouts) / fanout_seconds,
        scan_p50_ms=_percentile(scans, 50),
        scan_p99_ms=_percentile(scans, 99),
        written=len(appends) + _entries(fanouts),
    )


async def _grow(
    write: Callable[[Sequence[Fanout]], Awaitable[None]],
    plan: Sequence[Fanout],
    stored: int,
    label: str,
    progress: Progress,
) -> Growth:
    """Write ``plan`` in timed windows; ``stored`` is the size before it."""
    windows = []
    start_size = stored
    total = 0.0
    size = max(1, -(-len(plan) // GROWTH_WINDOWS))
    for first in range(0, len(plan), size):
        part = plan[first : first + size]
        seconds = await _timed(write(part))
        stored += _entries(part)
        total += seconds
        windows.append((stored, _entries(part) / seconds))
        progress.show(f"{label}: {stored:,} entries, {windows[-1][1]:,.0f} entries/s", force=True)
    return Growth(start_size, tuple(windows), _entries(plan), total)


async def _replay_naive(
    naive: NaiveWriter, fill: Sequence[Fanout], plan: Sequence[Fanout], progress: Progress
) -> Growth:
    await naive.open()
    try:
        await naive.write(fill)
        return await _grow(naive.write, plan, _entries(fill), "naive layout", progress)
    finally:
        await naive.close()


# -- operations -----------------------------------------------------------------


async def _fan_out(store: Store, plan: Sequence[Fanout], senders: int) -> None:
    pending = iter(plan)

    async def sender() -> None:
        for fanout in pending:
            items = [Append(fanout.history, fanout.message, fanout.client_id)]
            items += [Append(inbox, fanout.message, ref=0) for inbox in fanout.inboxes]
            await store.append_many(items)

    await asyncio.gather(*(sender() for _ in range(senders)))


async def _append_concurrently(
    store: Store, appends: Sequence[tuple[str, dict[str, object]]], appenders: int
) -> float:
    """Seconds for ``appenders`` concurrent callers to append everything; each
    append returns only once its commit is durable."""
    pending = iter(appends)

    async def appender() -> None:
        for timeline_id, message in pending:
            await store.append(timeline_id, message)

    return await _timed(asyncio.gather(*(appender() for _ in range(appenders))))


async def _scan_times(store: Store, timeline_ids: Sequence[str]) -> list[float]:
    """Milliseconds of a newest-20 scan of each timeline, one after another."""
    times = []
    for timeline_id in timeline_ids:
        start = time.perf_counter()
        await store.scan(timeline_id, limit=20, direction=Direction.BACKWARD)
        times.append((time.perf_counter() - start) * 1000)
    return times


async def _timed(work: Awaitable[object]) -> float:
    start = time.perf_counter()
    await work
    return time.perf_counter() - start


# -- scratch databases ----------------------------------------------------------


@contextlib.asynccontextmanager
async def _scratch(options: Options) -> AsyncIterator[_Scratch]:
    if options.backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="tidings-bench-") as directory:
            path = Path(directory)
            naive = NaiveSQLite(
                str(path / "naive.db"), synchronous=options.synchronous, cache_kib=NAIVE_CACHE_KIB
            )
            engine = f"SQLite {sqlite3.sqlite_version}, synchronous={options.synchronous}"
            yield _Scratch(f"sqlite:///{path / 'store.db'}", naive, engine, path)
        return
    async with _throwaway_postgres(options.dsn) as (url, version):
        naive_pg = NaivePostgres(url, writers=options.senders)
        yield _Scratch(url, naive_pg, f"PostgreSQL {version}", None)


@contextlib.asynccontextmanager
async def _throwaway_postgres(dsn: str) -> AsyncIterator[tuple[str, str]]:
    """A database created for the run and dropped after it."""
    import asyncpg

    name = f"tidings_bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(dsn)
    try:
        version = await admin.fetchval("SHOW server_version")
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlsplit(dsn)._replace(path="/" + name).geturl(), str(version)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _disk_bytes(directory: Path | None) -> dict[str, int]:
    """Bytes on disk per database file (SQLite only), WAL included."""
    if directory is None:
        return {}
    sizes: dict[str, int] = {}
    for path in directory.iterdir():
        name = path.name.split(".")[0]
        sizes[name] = sizes.get(name, 0) + path.stat().st_size
    return sizes


# -- small pieces ---------------------------------------------------------------


def _scan_probe_id(n: int) -> str:
    return f"inbox:probe{n:02d}"


def _entries(plan: Sequence[Fanout]) -> int:
    return sum(fanout.entries for fanout in plan)


def _percentile(values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * percent // 100))
    return ordered[int(rank) - 1]
