"""With the whole bus down, nodes keep serving: sends commit and ack, sync
has everything; cross-node push resumes when the bus is back."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from processes import Cluster, NatsCluster, Node
from traffic import frame, socket, user


@pytest.fixture
def lone_nats() -> Iterator[NatsCluster]:
    nats = NatsCluster(Path(tempfile.mkdtemp(prefix="tidings-nats-")), size=1)
    nats.start(0)
    yield nats
    nats.stop_all()


async def test_nodes_serve_through_a_bus_outage_and_push_resumes_after(
    cluster: Cluster, lone_nats: NatsCluster
) -> None:
    args = ["--db", cluster.pg.dsn, "--bus", lone_nats.url]
    a, b = Node("outage-a", lone_nats.root, args), Node("outage-b", lone_nats.root, args)
    await asyncio.to_thread(a.start)
    await asyncio.to_thread(b.start)
    alice = await user(a.url, "oalice")
    bob = await user(b.url, "obob")
    path = f"/conversations/{alice.dm('obob')}/messages"
    try:
        on_b = await socket(bob, b.url)
        await asyncio.sleep(0.3)  # bob's subscription reaches the server
        await alice.request("POST", path, {"text": "before"})
        assert (await frame(on_b, "event", 2))["event"]["message"]["text"] == "before"

        lone_nats.kill(0)
        started = time.monotonic()
        sent = await alice.request("POST", path, {"text": "during"})
        assert time.monotonic() - started < 1.0, "a send waited for the bus"
        await on_b.send_str(orjson.dumps({"op": "sync", "ref": "s", "after": 0}).decode())
        synced = await frame(on_b, "synced", 5)
        texts = [e["message"]["text"] for e in synced["events"] if e.get("type") == "message"]
        assert texts == ["before", "during"] and sent["seq"] == 2

        await asyncio.to_thread(lone_nats.start, 0)
        back = time.monotonic()
        deadline = back + 15
        for n in range(100):  # pushes flow again once both nodes have reconnected
            await alice.request("POST", path, {"text": f"after {n}"})
            try:
                pushed = await frame(on_b, "event", 1.0)
            except TimeoutError:
                assert time.monotonic() < deadline, "cross-node push did not resume"
                continue
            assert pushed["event"]["message"]["text"].startswith("after")
            print(f'{{"fault": "whole bus down", "push_resumed_s": {time.monotonic() - back:.2f}}}')
            break
        await on_b.close()
    finally:
        await alice.close()
        await bob.close()
        a.kill()
        b.kill()
