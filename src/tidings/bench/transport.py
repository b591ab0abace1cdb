"""``tidings bench transport``: the WebSocket stacks Tidings could run on, bare.

Each stack serves a minimal request → ack loop (parse a ~150-byte JSON frame,
answer with an ack carrying its ``ref``) in a server process pinned to one
core, while this process, pinned to the other, keeps ``--window`` requests in
flight on each of ``--connections`` sockets. It prints acks/s and the ack
latency per stack, and the server's CPU time per ack (the figure the load
generator's own limits do not blur). aiohttp is what Tidings runs on; picows is measured when it
is installed (``pip install picows``), as the fastest option the issue names.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

STACKS = ("aiohttp", "picows")


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--json", action="store_true", help="print one JSON object instead of a table")
    add("--connections", type=int, default=200, help="sockets (default 200)")
    add("--window", type=int, default=4, help="requests in flight per socket")
    add("--duration", type=float, default=5.0, help="seconds per stack")
    add("--port", type=int, default=18765, help="the server's port on 127.0.0.1")
    add("--serve", choices=STACKS, help=argparse.SUPPRESS)  # the server process


def run(args: argparse.Namespace) -> int:
    import orjson
    import uvloop

    from .load_server import usage

    if args.serve:
        _pin(0)
        uvloop.run(_serve(args.serve, args.port))
        return 0
    _pin(1)
    results: list[dict[str, Any]] = []
    for stack in STACKS:
        if stack == "picows" and not _has_picows():
            results.append({"stack": stack, "skipped": "pip install picows to compare"})
            continue
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tidings.cli",
                "bench",
                "transport",
                "--serve",
                stack,
                "--port",
                str(args.port),
            ]
        )
        try:
            before = usage(server.pid).cpu
            figures = uvloop.run(_load(args))
            cpu = usage(server.pid).cpu - before
            figures["server_us_per_ack"] = cpu / figures.pop("acks") * 1e6
            results.append({"stack": stack, **figures})
        finally:
            server.terminate()
            server.wait(10)
    if args.json:
        print(orjson.dumps({"stacks": results}).decode())
    else:
        for row in results:
            if "skipped" in row:
                print(f"{row['stack']:<8} skipped: {row['skipped']}")
            else:
                print(
                    f"{row['stack']:<8} {row['acks_per_s']:>9,.0f} acks/s"
                    f"  p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms"
                    f"  server CPU {row['server_us_per_ack']:.1f} µs per ack"
                )
    return 0


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core})


def _has_picows() -> bool:
    import importlib.util

    return importlib.util.find_spec("picows") is not None


async def _serve(stack: str, port: int) -> None:
    import asyncio

    import orjson

    def ack(payload: bytes | str) -> bytes:
        return orjson.dumps({"op": "ack", "ref": orjson.loads(payload)["ref"]})

    if stack == "aiohttp":
        from aiohttp import web

        async def socket(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for message in ws:
                await ws.send_bytes(ack(message.data))
            return ws

        app = web.Application()
        app.router.add_get("/", socket)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
    else:
        import picows

        class Listener(picows.WSListener):  # type: ignore[misc,unused-ignore]
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if frame.msg_type in (picows.WSMsgType.TEXT, picows.WSMsgType.BINARY):
                    transport.send(picows.WSMsgType.BINARY, ack(frame.get_payload_as_bytes()))

        await picows.ws_create_server(lambda _: Listener(), "127.0.0.1", port)
    await asyncio.Event().wait()


async def _load(args: argparse.Namespace) -> dict[str, float]:
    import asyncio

    import aiohttp
    import orjson

    latencies: list[float] = []
    acks = 0
    deadline = time.perf_counter() + 1.0 + args.duration
    measuring_from = deadline - args.duration
    filler = "x" * 100

    async def client(session: aiohttp.ClientSession, number: int) -> None:
        for _ in range(50):  # wait for the server to listen
            try:
                ws = await session.ws_connect(f"http://127.0.0.1:{args.port}/")
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError("the transport server did not start")
        sent: dict[int, float] = {}
        ref = 0

        async def send() -> None:
            nonlocal ref
            ref += 1
            sent[ref] = time.perf_counter()
            await ws.send_bytes(orjson.dumps({"op": "send", "ref": ref, "text": filler}))

        for _ in range(args.window):
            await send()
        nonlocal acks
        async for message in ws:
            acks += 1
            now = time.perf_counter()
            started = sent.pop(orjson.loads(message.data)["ref"])
            if now >= measuring_from:
                latencies.append(now - started)
            if now >= deadline:
                break
            await send()
        await ws.close()

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session, n) for n in range(args.connections)))
    latencies.sort()
    return {
        "acks_per_s": len(latencies) / args.duration,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "acks": acks,
    }
