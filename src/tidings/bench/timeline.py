"""``tidings bench timeline``: how fast the timeline store writes and reads.

Measures, on a scratch database thrown away afterwards: appends/s with 64
concurrent appenders, each acked only once durable; fan-out entries/s (one
history entry + 100 inbox entries per message, inboxes drawn among 10,000) while
the store grows to 1,000,000 entries, next to the naive layout replaying the same
fan-outs; newest-20 scan latency; and how append and scan costs change from
10,000 to 1,000,000 stored entries. ``--json`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .measure import Options, Report

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--backend", choices=("sqlite", "postgres"), default="sqlite", help="default sqlite")
    add("--json", action="store_true", help="print one JSON object instead of a table")
    add(
        "--entries",
        type=int,
        default=1_000_000,
        help="grow the store to this many entries (1,000,000)",
    )
    add(
        "--small", type=int, default=10_000, help="the small store costs are compared with (10,000)"
    )
    add("--inboxes", type=int, default=10_000, help="inboxes the fan-outs pick among")
    add("--fanout", type=int, default=100, help="inboxes per message")
    add("--senders", type=int, default=64, help="concurrent append_many callers")
    add("--appenders", type=int, default=64, help="concurrent single appenders")
    add("--appends", type=int, default=50, help="appends per appender per store size")
    add("--probe-fanouts", type=int, default=200, help="fan-outs per store size")
    add("--scans", type=int, default=2_000, help="newest-20 scans per store size")
    add("--synchronous", choices=("FULL", "NORMAL"), default="FULL", help="SQLite: default FULL")
    add(
        "--dsn",
        default=DEFAULT_DSN,
        help=f"PostgreSQL server to create scratch databases on (default {DEFAULT_DSN})",
    )
    add("--seed", type=int, default=1, help="seeds the workload")


def run(args: argparse.Namespace) -> int:
    import asyncio

    import orjson

    from .measure import PROBE_ROUNDS, SCAN_PROBE_DEPTH, SCAN_PROBE_TIMELINES, Options, measure
    from .progress import Progress

    options = Options(
        backend=args.backend,
        entries=args.entries,
        small=args.small,
        inboxes=args.inboxes,
        fanout=args.fanout,
        senders=args.senders,
        appenders=args.appenders,
        appends=args.appends,
        probe_fanouts=args.probe_fanouts,
        scans=args.scans,
        synchronous=args.synchronous,
        dsn=args.dsn,
        seed=args.seed,
    )
    problem = _check(options, SCAN_PROBE_TIMELINES * SCAN_PROBE_DEPTH, PROBE_ROUNDS)
    if problem:
        print(f"tidings bench timeline: {problem}", file=sys.stderr)
        return 2
    report = asyncio.run(measure(options, Progress()))
    if args.json:
        print(orjson.dumps(figures(report)).decode())
    else:
        print(describe(report))
    return 0


def _check(options: Options, seeded: int, rounds: int) -> str | None:
    counts = ("inboxes", "fanout", "senders", "appenders", "appends", "probe_fanouts", "scans")
    for name in counts:
        if getattr(options, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1"
    if min(options.appenders * options.appends, options.probe_fanouts) < rounds:
        return f"--probe-fanouts and --appenders x --appends must be at least {rounds}"
    if options.fanout > options.inboxes:
        return "--fanout must not exceed --inboxes"
    if options.small <= seeded + options.fanout + 1:
        return f"--small must exceed {seeded + options.fanout + 1} (the seeded scan timelines)"
    if options.entries <= options.small * 2:
        return "--entries must be more than twice --small"
    return None


def figures(report: Report) -> dict[str, Any]:
    """The JSON object: the keys the issue names first, then the detail."""
    small, large = report.small, report.large
    append_ratio = small.append_per_s / large.append_per_s
    fanout_ratio = small.fanout_entries_per_s / large.fanout_entries_per_s
    return {
        "append_per_s": round(large.append_per_s),
        "fanout_entries_per_s": round(report.growth.rate),
        "naive_fanout_entries_per_s": round(report.naive.rate),
        "scan20_p50_ms": round(report.inbox_scan_p50_ms, 3),
        "scan20_p99_ms": round(report.inbox_scan_p99_ms, 3),
        # Costs (time per entry, time per scan) at the large size over the small
        # one; the append ratio is the worse of single appends and fan-outs.
        "scale_ratio_append": round(max(append_ratio, fanout_ratio), 3),
        "scale_ratio_scan": round(large.scan_p50_ms / small.scan_p50_ms, 3),
        "backend": report.options.backend,
        "engine": report.engine,
        "stored_entries": large.stored,
        "fanout_at_end_entries_per_s": round(report.growth.last_rate),
        "naive_fanout_at_end_entries_per_s": round(report.naive.last_rate),
        "fanout_vs_naive": round(report.growth.rate / report.naive.rate, 2),
        "probes": {
            str(probe.stored): {
                "append_per_s": round(probe.append_per_s),
                "fanout_entries_per_s": round(probe.fanout_entries_per_s),
                "scan20_p50_ms": round(probe.scan_p50_ms, 3),
                "scan20_p99_ms": round(probe.scan_p99_ms, 3),
            }
            for probe in (small, large)
        },
        "growth_windows": [[size, round(rate)] for size, rate in report.growth.windows],
        "naive_growth_windows": [[size, round(rate)] for size, rate in report.naive.windows],
        "scale_ratio_append_single": round(append_ratio, 3),
        "scale_ratio_append_fanout": round(fanout_ratio, 3),
        "message_bytes": round(report.message_bytes, 1),
        "disk_bytes": report.disk_bytes,
    }


def describe(report: Report) -> str:
    """The figures as a table a person reads."""
    o, small, large = report.options, report.small, report.large
    numbers = figures(report)
    lines = [
        f"tidings bench timeline: {report.engine}",
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}",
        f"workload: ~{report.message_bytes:.0f}-byte messages; fan-out = 1 history + "
        f"{o.fanout} inboxes of {o.inboxes:,}; {o.senders} senders; {o.appenders} appenders",
        "",
        f"{'':38}{'at ' + format(small.stored, ','):>16}{'at ' + format(large.stored, ','):>16}"
        f"{'cost ratio':>12}",
        _row(
            f"appends/s ({o.appenders} appenders, durable)",
            small.append_per_s,
            large.append_per_s,
            numbers["scale_ratio_append_single"],
            "{:,.0f}",
        ),
        _row(
            "fan-out entries/s (burst)",
            small.fanout_entries_per_s,
            large.fanout_entries_per_s,
            numbers["scale_ratio_append_fanout"],
            "{:,.0f}",
        ),
        _row(
            "newest-20 scan p50 ms (same 20 tl.)",
            small.scan_p50_ms,
            large.scan_p50_ms,
            numbers["scale_ratio_scan"],
            "{:.3f}",
        ),
        _row(
            "newest-20 scan p99 ms (same 20 tl.)",
            small.scan_p99_ms,
            large.scan_p99_ms,
            large.scan_p99_ms / small.scan_p99_ms,
            "{:.3f}",
        ),
        "",
        f"growing from {report.growth.start:,} to {report.growth.windows[-1][0]:,} "
        "entries (fan-out entries/s):",
        f"  store        {report.growth.rate:>10,.0f} overall, "
        f"{report.growth.last_rate:>10,.0f} in the last window",
        f"  naive layout {report.naive.rate:>10,.0f} overall, "
        f"{report.naive.last_rate:>10,.0f} in the last window",
        f"  store / naive: {numbers['fanout_vs_naive']:.2f}x",
        "",
        f"newest-20 scan of random inboxes at {numbers['stored_entries']:,} entries: "
        f"p50 {report.inbox_scan_p50_ms:.3f} ms, p99 {report.inbox_scan_p99_ms:.3f} ms",
    ]
    if report.disk_bytes:
        sizes = ", ".join(
            f"{name} {size / 2**20:,.0f} MiB" for name, size in sorted(report.disk_bytes.items())
        )
        lines.append(f"on disk: {sizes}")
    return "\n".join(lines)


def _row(label: str, small: float, large: float, ratio: float, number: str) -> str:
    return f"{label:38}{number.format(small):>16}{number.format(large):>16}{ratio:>12.2f}"
