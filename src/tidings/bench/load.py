"""``tidings bench load``: load a server with many clients and verify delivery.

A run sets up the scenario's users (and groups) over HTTP, opens their
sockets from several client processes (never the server's), sends for a
while, waits for every push, sync and pull to settle, then checks that every
acked message reached every member exactly once and in order. It prints
messages accepted/s, deliveries/s, send→receive latency, and the CPU and
memory of the server and of the load generator; it exits 1 when anything was
lost, duplicated, reordered or refused.

With ``--spawn`` (the default without ``--url``) the server is a fresh
``tidings serve`` on a scratch data folder, with rate limits off and a cheap
password hash; with ``--url`` it is whatever runs there (pass
``--server-pid`` to get its CPU and memory).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .load_scenarios import SCENARIOS

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from .load_scenarios import Scenario
    from .progress import Progress


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--scenario", choices=SCENARIOS, required=True, help="what the clients do")
    add("--url", default="", help="a running server, e.g. ws://127.0.0.1:8081")
    add("--spawn", action="store_true", help="start a fresh server (the default without --url)")
    add("--db", default="", help="with --spawn: the server's store URL (default: SQLite)")
    add("--workers", type=int, default=None, help="with --spawn: the server's --workers")
    add(
        "--write-fanout-max",
        type=int,
        default=None,
        help="with --spawn: the server's write fan-out limit (default 200)",
    )
    add("--server-pid", type=int, default=None, help="with --url: the server's process id")
    add("--users", type=int, default=1000, help="dm, mixed: online users")
    add("--members", type=int, default=500, help="group: members, all online")
    add("--senders", type=int, default=10, help="group, offline: users who send")
    add("--messages", type=int, default=10_000, help="offline: messages waiting in all")
    add("--connections", type=int, default=10_000, help="idle: sockets")
    add("--rate", type=float, default=None, help="messages/s per sender (default: acks allow)")
    add("--window", type=int, default=8, help="sends in flight per sender")
    add("--duration", type=float, default=10.0, help="seconds of sending")
    add("--text-bytes", type=int, default=64, help="message text size")
    add("--procs", type=int, default=2, help="client processes")
    add("--seed", type=int, default=1, help="seed of the mixed scenario's choices")
    add("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    import orjson

    from .load_report import describe, failed
    from .load_scenarios import Options, build, run_tag
    from .load_server import SpawnedServer, raise_open_files

    raise_open_files()
    options = Options(
        users=args.users,
        members=args.members,
        senders=args.senders,
        messages=args.messages,
        connections=args.connections,
        rate=args.rate,
        window=args.window,
        duration=args.duration,
        text_bytes=args.text_bytes,
        seed=args.seed,
    )
    scenario = build(args.scenario, options, run_tag())
    server = None
    if args.url:
        url, pid = args.url.replace("ws", "http", 1).rstrip("/"), args.server_pid
    else:
        server = SpawnedServer(
            db=args.db, workers=args.workers, write_fanout_max=args.write_fanout_max
        )
        url, pid = server.url, server.pid
    try:
        result = _run(scenario, url, pid, max(1, args.procs), args.seed)
    finally:
        if server is not None:
            server.stop()
    print(orjson.dumps(result).decode() if args.json else describe(result))
    return 1 if failed(result) else 0


def _run(scenario: Scenario, url: str, pid: int | None, procs: int, seed: int) -> dict[str, Any]:
    import multiprocessing

    from .load_worker import WorkerPlan, main
    from .progress import Progress

    context = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    processes = []
    for index in range(procs):
        users = scenario.users[index::procs]
        ours, theirs = context.Pipe()
        plan = WorkerPlan(index, url, users, scenario, seed)
        process = context.Process(target=main, args=(theirs, plan), daemon=True)
        process.start()
        pipes.append(ours)
        processes.append(process)
    progress = Progress()
    try:
        return _phases(scenario, url, pid, pipes, progress)
    finally:
        progress.clear()
        for pipe in pipes:
            pipe.send(("stop",))
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()


def _phases(
    scenario: Scenario, url: str, pid: int | None, pipes: list[Connection], progress: Progress
) -> dict[str, Any]:
    import time

    from .load_report import Timings, figures
    from .load_server import usage

    def server() -> Any:
        return usage(pid) if pid is not None else None

    _all(pipes, ("setup",), progress, f"setting up {len(scenario.users):,} users")
    _create_groups(url, scenario)
    unconnected = server()
    opened = _all(pipes, ("connect", False), progress, "connecting")
    connected = server()
    before, started = server(), time.perf_counter()
    _all(pipes, ("send",), progress, "sending", started)
    seconds = time.perf_counter() - started
    after = server()
    _all(pipes, ("drain",), progress, "draining")
    sync_seconds = None
    if scenario.late:
        late = _all(pipes, ("connect", True), progress, "offline user syncing")
        sync_seconds = max(r["seconds"] for r in late if r["connected"])
    reports = _all(pipes, ("report",), progress, "collecting")
    timings = Timings(
        send_seconds=seconds,
        connections=sum(r["connected"] for r in opened),
        client_processes=len(pipes),
        sync_seconds=sync_seconds,
        server_before=before,
        server_after=after,
        server_unconnected=unconnected,
        server_connected=connected,
    )
    return figures(scenario, reports, timings)


def _all(
    pipes: list[Connection],
    command: tuple[Any, ...],
    progress: Progress,
    label: str,
    started: float | None = None,
) -> list[Any]:
    """Send ``command`` to every client process and wait for every answer,
    showing progress meanwhile."""
    import time
    from multiprocessing.connection import wait

    for pipe in pipes:
        pipe.send(command)
    answers: dict[int, Any] = {}
    counts: dict[int, tuple[int, int]] = {}
    started = started or time.perf_counter()
    while len(answers) < len(pipes):
        for ready in wait([p for i, p in enumerate(pipes) if i not in answers], 0.2):
            index = next(i for i, pipe in enumerate(pipes) if pipe is ready)
            kind, *payload = pipes[index].recv()
            if kind == "failed":
                raise RuntimeError(f"client process {index} failed:\n{payload[0]}")
            if kind == "progress":
                counts[index] = (payload[0], payload[1])
            else:
                answers[index] = payload[0]
        sent = sum(c[0] for c in counts.values())
        delivered = sum(c[1] for c in counts.values())
        elapsed = time.perf_counter() - started
        figures = f" {sent:,} sent, {delivered:,} delivered" if counts else ""
        progress.show(f"{label}: {elapsed:.0f} s{figures}")
    return [answers[i] for i in range(len(pipes))]


def _create_groups(url: str, scenario: Scenario) -> None:
    """Create the scenario's groups over HTTP, each by its first member."""
    import asyncio

    from ..client import Client
    from .load_worker import PASSWORD

    async def create() -> None:
        for gid, members in scenario.groups:
            async with Client(url) as owner:
                await owner.login(members[0], PASSWORD)
                await owner.create_group(gid, id=gid, members=list(members[1:]))

    if scenario.groups:
        asyncio.run(create())
