"""``tidings bench cluster``: push latency to a device on the sender's node vs
on another node.

Starts two nodes (``tidings serve`` processes) over one database and one bus,
gives each receiver a socket on node A (the sender's node) and one on node B,
sends direct messages from node A at a steady rate, and times send → push on
both sockets. The difference is what the bus costs a delivery.
Throughput of one node against several workers is ``tidings bench load``'s job
(``--workers``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

# A steady rate well under one node's capacity measures latency, not queueing.
DEFAULT_RATE = 200.0
START_TIMEOUT = 60.0


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--db", required=True, help="a PostgreSQL URL both nodes share")
    add("--bus", default="nats://127.0.0.1:4222", help="the NATS server(s) between the nodes")
    add("--pairs", type=int, default=20, help="sender/receiver pairs")
    add("--rate", type=float, default=DEFAULT_RATE, help="messages/s in all")
    add("--duration", type=float, default=10.0, help="seconds of sending")
    add("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    import orjson

    from .load_server import SPAWN_FLAGS

    with tempfile.TemporaryDirectory(prefix="tidings-cluster-bench-") as scratch:
        nodes = [_spawn(args, scratch, SPAWN_FLAGS) for _ in range(2)]
        try:
            urls = [url for _, url in nodes]
            result = asyncio.run(_measure(urls, args.pairs, args.rate, args.duration))
        finally:
            for process, _ in nodes:
                process.terminate()
                process.wait(15)
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        for key, value in result.items():
            print(f"{key:>22}  {value}")
    return 0


def _spawn(
    args: argparse.Namespace, scratch: str, flags: tuple[str, ...]
) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "tidings.cli", "serve", "--port", "0", "--data-dir", scratch]
    command += ["--db", args.db, "--bus", args.bus, *flags]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("tidings: serving on "):
            return process, line.split()[3].rstrip("/")
        if not line:
            break
    process.kill()
    raise RuntimeError("a node did not start (try it: tidings serve --db … --bus …)")


async def _measure(urls: list[str], pairs: int, rate: float, duration: float) -> dict[str, Any]:
    import aiohttp
    import orjson

    from ..client import Client

    run = f"c{int(time.time()) % 100_000}"
    sent_at: dict[str, float] = {}
    latencies: dict[str, list[float]] = {"same": [], "cross": []}
    clients: list[Client] = []

    async def login(name: str, url: str, register: bool) -> Client:
        client = Client(url)
        clients.append(client)
        if register:
            await client.register(name, "bench password")
        await client.login(name, "bench password")
        return client

    async def listen(ws: aiohttp.ClientWebSocketResponse, where: str) -> None:
        async for message in ws:
            frame = orjson.loads(message.data)
            if frame.get("op") == "event":
                cid = frame["event"]["message"].get("text", "")
                if cid in sent_at:
                    latencies[where].append(time.perf_counter() - sent_at[cid])

    sockets: list[aiohttp.ClientWebSocketResponse] = []
    listeners: list[asyncio.Task[None]] = []
    senders: list[tuple[Client, str]] = []
    for i in range(pairs):
        sender = await login(f"{run}s{i}", urls[0], True)
        near = await login(f"{run}r{i}", urls[0], True)
        far = await login(f"{run}r{i}", urls[1], False)
        for client, where in ((near, "same"), (far, "cross")):
            ws = await client.http.ws_connect(client.ws_url(), params={"token": client.token or ""})
            await ws.receive()  # ready
            sockets.append(ws)
            listeners.append(asyncio.create_task(listen(ws, where)))
        senders.append((sender, sender.dm(f"{run}r{i}")))
    await asyncio.sleep(1.0)  # subscriptions and presence settle on the bus
    sent = 0
    started = time.perf_counter()
    for n in itertools.count():
        due = started + n / rate
        if due - started > duration:
            break
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        client, conversation = senders[n % len(senders)]
        cid = f"{run}-{n}"
        sent_at[cid] = time.perf_counter()
        path = f"/conversations/{conversation}/messages"
        asyncio.ensure_future(client.request("POST", path, {"text": cid}))
        sent += 1
    await asyncio.sleep(2.0)
    for task in listeners:
        task.cancel()
    for ws in sockets:
        await ws.close()
    for client in clients:
        await client.close()
    return {
        "sent": sent,
        **_summary("same_node", latencies["same"], sent),
        **_summary("cross_node", latencies["cross"], sent),
    }


def _summary(name: str, values: list[float], sent: int) -> dict[str, Any]:
    if not values:
        return {f"{name}_received": 0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        f"{name}_received": len(values),
        f"{name}_p50_ms": round(statistics.median(ordered) * 1000, 2),
        f"{name}_p99_ms": round(p99 * 1000, 2),
    }
