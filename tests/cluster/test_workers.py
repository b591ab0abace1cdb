"""``tidings serve --workers 2`` on SQLite: one port, pushes across workers,
writes of both workers serialized with nothing lost when one is killed, the
dead worker restarted, SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from processes import Node
from traffic import frame, run_fault, socket, user


def workers_of(pid: int) -> list[int]:
    """The worker processes under the supervisor ``pid`` (not the resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = []
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"resource_tracker" not in command:
            found.append(int(child))
    return found


async def test_workers_share_a_port_relay_pushes_and_are_restarted(tmp_path: Path) -> None:
    node = Node("workers", tmp_path, ["--data-dir", str(tmp_path / "data"), "--workers", "2"])
    await asyncio.to_thread(node.start)
    try:
        assert node.process is not None
        assert len(workers_of(node.process.pid)) == 2
        alice = await user(node.url, "walice")
        # Eight sockets of bob: the kernel spreads them over both workers.
        bobs = [await user(node.url, "wbob")]
        bobs += [await user(node.url, "wbob", device=f"d{i}") for i in range(7)]
        sockets = [await socket(bob, node.url) for bob in bobs]
        await asyncio.sleep(0.3)  # the relay connections and subscriptions settle
        await alice.request("POST", f"/conversations/{alice.dm('wbob')}/messages", {"text": "hi"})
        for ws in sockets:  # pushed, not synced: every worker got it from the relay
            assert (await frame(ws, "event", 2.0))["event"]["message"]["text"] == "hi"
            await ws.close()
        for client in (alice, *bobs):
            await client.close()

        async def kill_a_worker() -> None:
            assert node.process is not None
            victim = workers_of(node.process.pid)[0]
            os.kill(victim, signal.SIGKILL)  # its clients reconnect to the other one
            deadline = time.monotonic() + 20
            while True:
                current = workers_of(node.process.pid)
                if len(current) == 2 and victim not in current:
                    return
                assert time.monotonic() < deadline, "the dead worker was not restarted"
                await asyncio.sleep(0.1)

        # Both workers write one SQLite file: under traffic, and with one of
        # them killed, nothing acked is lost, doubled or reordered.
        await run_fault("kill -9 one of 2 SQLite workers", [node.url], kill_a_worker, node.url)

        node.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(node.process.wait, 30) == 0
        assert b"tidings: stopped" in node.log.read_bytes()
    finally:
        node.kill()
