"""Failures under traffic lose nothing.

Each test runs chat traffic across the cluster, breaks one part, lets it
recover, and checks that every acked message reached every recipient device
exactly once, in per-conversation order, and is in history once; then prints
its figures (sent, acked, delivered, lost, duplicated, time to recover).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from processes import Cluster, Node
from traffic import frame, run_fault, socket, user

from tidings.client import ApiError


async def test_killing_a_tidings_node_loses_nothing(cluster: Cluster) -> None:
    victim = cluster.nodes[0]

    async def kill() -> None:
        victim.kill()  # its clients reconnect to the other nodes and resync

    try:
        await run_fault("kill -9 a Tidings node", cluster.urls, kill, cluster.nodes[1].url)
    finally:
        await asyncio.to_thread(victim.start)


async def test_killing_a_nats_server_loses_nothing(cluster: Cluster) -> None:
    async def kill() -> None:
        cluster.nats.kill(0)  # nodes on it reconnect to the other two

    try:
        await run_fault("kill -9 a NATS server", cluster.urls, kill, cluster.nodes[1].url)
    finally:
        await asyncio.to_thread(cluster.nats.start, 0)


async def test_restarting_postgresql_loses_nothing(cluster: Cluster) -> None:
    probe = await user(cluster.urls[2], "pgprobe")
    path = f"/conversations/{probe.dm('pgprobe')}/messages"
    on_node = await socket(probe, cluster.urls[2])
    refused: list[str] = []

    async def restart() -> None:
        await asyncio.to_thread(cluster.pg.stop, "immediate")
        # While it is down, a send is refused with a retryable error, over
        # HTTP (503) and over the socket (an error frame)...
        with pytest.raises(ApiError) as over_http:
            await probe.request("POST", path, {"text": "probe", "client_msg_id": "p1"})
        refused.append(f"{over_http.value.status} {over_http.value.code}")
        await on_node.send_str(
            orjson.dumps(
                {
                    "op": "send",
                    "ref": "p",
                    "conversation": probe.dm("pgprobe"),
                    "text": "probe",
                    "client_msg_id": "p1",
                }
            ).decode()
        )
        refused.append((await frame(on_node, "error", 5))["code"])
        await asyncio.sleep(1.0)  # the traffic's sends fail too and are retried
        await asyncio.to_thread(cluster.pg.start)

    try:
        await run_fault("stop and restart PostgreSQL", cluster.urls, restart, cluster.nodes[1].url)
        assert refused == ["503 unavailable", "unavailable"]
        # ...and the retry, once it is back, is written once.
        for _ in range(2):
            await probe.request("POST", path, {"text": "probe", "client_msg_id": "p1"})
        messages, _ = await probe.history(probe.dm("pgprobe"))
        assert [m["text"] for m in messages] == ["probe"]
    finally:
        await on_node.close()
        await probe.close()


@pytest.fixture
def sqlite_node(tmp_path: Path) -> Any:
    # The default: one process on SQLite, synchronous=FULL.
    node = Node("sqlite", tmp_path, ["--data-dir", str(tmp_path / "data")])
    node.args += ["--sqlite-synchronous", "FULL"]
    node.start()
    yield node
    node.kill()


async def test_killing_the_single_sqlite_node_under_load_loses_nothing(sqlite_node: Node) -> None:
    async def crash_and_restart() -> None:
        sqlite_node.kill()
        await asyncio.sleep(0.5)
        await asyncio.to_thread(sqlite_node.start)

    await run_fault(
        "kill -9 the SQLite node and restart", [sqlite_node.url], crash_and_restart, sqlite_node.url
    )
