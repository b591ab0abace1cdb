"""The measurements behind ``tidings bench timeline``.

One run, on scratch databases that are thrown away afterwards:

1. two stores get the same few scan-probe timelines and the same fan-outs until
   they hold ``small`` entries;
2. the large one keeps fanning out until it holds ``entries`` entries, timing
   each window of the growth;
3. both are probed side by side, in alternating rounds (so that load from
   elsewhere on the machine falls on both sizes alike): concurrent single
   appends, a burst of fan-outs, newest-20 scans of the scan-probe timelines;
4. random inboxes of the large store are scanned;
5. the same fan-outs are replayed through the naive layout (see :mod:`.naive`).
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
# The probes alternate between the two stores in this many rounds.
PROBE_ROUNDS = 4
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
    """Figures taken at one store size (``stored`` entries when probing began)."""

    stored: int
    append_per_s: float
    fanout_entries_per_s: float
    scan_p50_ms: float
    scan_p99_ms: float


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
    small_url: str
    large_url: str
    naive: NaiveWriter
    engine: str
    directory: Path | None


class _Sample:
    """What one store's probe rounds measured, summed over the rounds."""

    def __init__(self, stored: int) -> None:
        self.stored = stored
        self.scans: list[float] = []
        self.appends = self.fanout_entries = 0
        self.append_seconds = self.fanout_seconds = 0.0

    def probe(self) -> Probe:
        return Probe(
            stored=self.stored,
            append_per_s=self.appends / self.append_seconds,
            fanout_entries_per_s=self.fanout_entries / self.fanout_seconds,
            scan_p50_ms=percentile(self.scans, 50),
            scan_p99_ms=percentile(self.scans, 99),
        )


async def measure(options: Options, progress: Progress) -> Report:
    """Run the whole benchmark (see the module docstring)."""
    groups = max(1, int(options.inboxes * GROUPS_PER_INBOX))
    workload = Workload(
        inboxes=options.inboxes, fanout=options.fanout, groups=groups, seed=options.seed
    )
    async with _scratch(options) as scratch:
        extra = {"synchronous": options.synchronous} if options.backend == "sqlite" else {}
        large = await open_store(scratch.large_url, purge_interval=None, **extra)
        small = await open_store(scratch.small_url, purge_interval=None, **extra)
        try:
            progress.show(f"filling two stores to {options.small:,} entries", force=True)
            seeds = _scan_probe_seeds(workload)
            fill = workload.fanouts(options.small - _entries(seeds))
            for store in (small, large):
                await _fan_out(store, [*seeds, *fill], options.senders)
            stored = _entries(seeds) + _entries(fill)
            plan = workload.fanouts(options.entries - stored)
            growth = await _grow(
                lambda part: _fan_out(large, part, options.senders), plan, stored, "store", progress
            )
            probes = await _probe_side_by_side(
                {stored: small, stored + growth.entries: large}, workload, options, progress
            )
            inbox_scans = await _scan_times(large, workload.pick_inboxes(options.scans))
        finally:
            await small.close()
            await large.close()
        naive = await _replay_naive(scratch.naive, [*seeds, *fill], plan, progress)
        disk = _disk_bytes(scratch.directory)
    progress.clear()
    return Report(
        options=options,
        engine=scratch.engine,
        message_bytes=workload.mean_message_bytes(),
        small=probes[0],
        large=probes[1],
        growth=growth,
        naive=naive,
        inbox_scan_p50_ms=percentile(inbox_scans, 50),
        inbox_scan_p99_ms=percentile(inbox_scans, 99),
        disk_bytes=disk,
    )


# -- phases ---------------------------------------------------------------------


def _scan_probe_seeds(workload: Workload) -> list[Fanout]:
    """The scan-probe timelines' entries: messages with no inbox to go to."""
    return [
        Fanout(_scan_probe_id(n), (), workload.message(_scan_probe_id(n)))
        for n in range(SCAN_PROBE_TIMELINES)
        for _ in range(SCAN_PROBE_DEPTH)
    ]


async def _probe_side_by_side(
    stores: dict[int, Store], workload: Workload, options: Options, progress: Progress
) -> list[Probe]:
    """Probe each store (keyed by its size) in alternating rounds."""
    samples = {stored: _Sample(stored) for stored in stores}
    scan_ids = [_scan_probe_id(n % SCAN_PROBE_TIMELINES) for n in range(options.scans)]
    for round_ in range(PROBE_ROUNDS):
        progress.show(f"probing both stores, round {round_ + 1}/{PROBE_ROUNDS}", force=True)
        for stored, store in stores.items():
            sample = samples[stored]
            sample.scans += await _scan_times(store, scan_ids[round_::PROBE_ROUNDS])
            appends = workload.appends(options.appenders * options.appends // PROBE_ROUNDS)
            sample.append_seconds += await _append_concurrently(store, appends, options.appenders)
            sample.appends += len(appends)
            fanouts = workload.fanouts(options.probe_fanouts * (options.fanout + 1) // PROBE_ROUNDS)
            sample.fanout_seconds += await _timed(_fan_out(store, fanouts, options.senders))
            sample.fanout_entries += _entries(fanouts)
    return [sample.probe() for sample in samples.values()]


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
            small, large = (f"sqlite:///{path / name}.db" for name in ("small", "store"))
            yield _Scratch(small, large, naive, engine, path)
        return
    async with _throwaway_postgres(options.dsn, ("small", "store")) as (urls, version):
        naive_pg = NaivePostgres(urls[1], writers=options.senders)
        yield _Scratch(urls[0], urls[1], naive_pg, f"PostgreSQL {version}", None)


@contextlib.asynccontextmanager
async def _throwaway_postgres(
    dsn: str, roles: Sequence[str]
) -> AsyncIterator[tuple[list[str], str]]:
    """A database per role, created for the run and dropped after it."""
    import asyncpg

    token = f"{os.getpid()}_{secrets.token_hex(4)}"
    names = [f"tidings_bench_{role}_{token}" for role in roles]
    admin = await asyncpg.connect(dsn)
    try:
        version = await admin.fetchval("SHOW server_version")
        try:
            for name in names:
                await admin.execute(f'CREATE DATABASE "{name}"')
            yield [urlsplit(dsn)._replace(path="/" + name).geturl() for name in names], str(version)
        finally:
            for name in names:
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


def percentile(values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * percent // 100))
    return ordered[int(rank) - 1]
