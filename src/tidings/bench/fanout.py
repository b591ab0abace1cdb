"""``tidings bench fanout``: what a group message costs, by group size and mode.

For groups of 10, 100, 500 and 5,000 members, in write fan-out (one inbox entry
per member) and read fan-out (only the group history), it measures the send
cost through the IM layer on a scratch SQLite store: messages/s with
concurrent senders, and the latency of one send (p50/p99). Then the sync cost
for one member after 1,000 group messages: draining the inbox (write fan-out)
or pulling the group history from a cursor (read fan-out).
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..im import Context

SIZES = (10, 100, 500, 5000)


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--json", action="store_true", help="print one JSON object instead of a table")
    add("--sizes", default=",".join(map(str, SIZES)), help="group sizes, comma-separated")
    add("--sends", type=int, default=200, help="messages per measurement")
    add("--senders", type=int, default=16, help="concurrent senders for the throughput run")
    add("--sync-messages", type=int, default=1000, help="group messages before the sync probe")
    add("--db", default="", help="store URL (default: a scratch SQLite file)")


def run(args: argparse.Namespace) -> int:
    import asyncio

    import orjson

    sizes = [int(size) for size in args.sizes.split(",")]
    report = asyncio.run(_measure(args, sizes))
    if args.json:
        print(orjson.dumps(report).decode())
    else:
        print(_describe(report))
    return 0


async def _measure(args: argparse.Namespace, sizes: list[int]) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    from ..im import Context, IMSettings
    from ..timeline import open_store
    from .progress import Progress

    progress = Progress()
    sends: list[dict[str, Any]] = []
    syncs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as scratch:
        for mode in ("write", "read"):
            settings = IMSettings(
                write_fanout_max=10**9 if mode == "write" else 0,
                password_time_cost=1,
                password_memory_kib=1024,
            )
            url = args.db or f"sqlite:///{Path(scratch) / f'{mode}.db'}"
            store = await open_store(url, purge_interval=None)
            try:
                ctx = Context(store, settings)
                for size in sizes:
                    progress.show(f"{mode} fan-out, {size} members", force=True)
                    sends.append(await _send_cost(ctx, mode, size, args.sends, args.senders))
                progress.show(f"{mode} fan-out, sync after {args.sync_messages}", force=True)
                syncs.append(await _sync_cost(ctx, mode, args.sync_messages))
            finally:
                await store.close()
    progress.clear()
    return {"sends": sends, "syncs": syncs}


async def _group(ctx: Context, tag: str, size: int) -> str:
    """A group of ``size`` fresh members; returns its conversation id."""
    from ..im import groups
    from ..im.names import group

    members = [f"{tag}-{i}" for i in range(size)]
    for member in members:
        # Direct records: registering thousands with a password hash would
        # measure Argon2, not fan-out.
        await ctx.store.put_meta(f"user:{member}", {"display_name": member})
    gid = f"{tag}-group"
    await groups.create(ctx, members[0], tag, gid=gid, members=members[1:])
    return group(gid)


async def _send_cost(
    ctx: Context, mode: str, size: int, count: int, senders: int
) -> dict[str, Any]:
    import asyncio

    from ..im import messaging
    from .measure import percentile

    conversation = await _group(ctx, f"s{mode[0]}{size}", size)
    sender = conversation.removeprefix("group:").removesuffix("-group") + "-0"
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        await messaging.send(ctx, sender, conversation, text=f"sequential {i}: " + "x" * 120)
        latencies.append(time.perf_counter() - started)

    async def send_many(worker: int) -> None:
        for i in range(count // senders):
            await messaging.send(ctx, sender, conversation, text=f"{worker}/{i}: " + "x" * 120)

    started = time.perf_counter()
    await asyncio.gather(*(send_many(w) for w in range(senders)))
    elapsed = time.perf_counter() - started
    sent = count // senders * senders
    return {
        "mode": mode,
        "members": size,
        "messages_per_s": sent / elapsed,
        "entries_per_s": sent * (size + 1 if mode == "write" else 1) / elapsed,
        "send_p50_ms": percentile(latencies, 50) * 1000,
        "send_p99_ms": percentile(latencies, 99) * 1000,
    }


async def _sync_cost(ctx: Context, mode: str, messages: int) -> dict[str, Any]:
    from ..im import messaging, sync

    conversation = await _group(ctx, f"y{mode[0]}", 100)
    tag = conversation.removeprefix("group:").removesuffix("-group")
    sender, reader = f"{tag}-0", f"{tag}-1"
    await ctx.store.put_meta(f"device:{reader}:bench", {"cursor": 0, "token": ""})
    for i in range(messages):
        await messaging.send(ctx, sender, conversation, text=f"message {i}")
    started = time.perf_counter()
    received = 0
    result = await sync.sync(ctx, reader, "bench", after=0, limit=1000)
    while True:
        received += sum(1 for e in result.events if e["type"] == "message")
        if not result.has_more:
            break
        result = await sync.sync(ctx, reader, "bench", after=result.cursor, limit=1000)
    after = 0
    while after < result.heads.get(conversation, 0):
        page, _ = await sync.history(
            ctx, reader, conversation, after=after, direction="forward", limit=200
        )
        received += len(page)
        after = page[-1]["seq"]
    elapsed = time.perf_counter() - started
    return {"mode": mode, "messages": received, "sync_ms": elapsed * 1000}


def _describe(report: dict[str, Any]) -> str:
    lines = [
        f"{'mode':<6} {'members':>7} {'msgs/s':>9} {'entries/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
    ]
    for row in report["sends"]:
        lines.append(
            f"{row['mode']:<6} {row['members']:>7} {row['messages_per_s']:>9.0f}"
            f" {row['entries_per_s']:>10.0f} {row['send_p50_ms']:>8.2f} {row['send_p99_ms']:>8.2f}"
        )
    lines.append("")
    for row in report["syncs"]:
        lines.append(
            f"sync after group messages, {row['mode']} fan-out:"
            f" {row['messages']} messages in {row['sync_ms']:.1f} ms"
        )
    return "\n".join(lines)
