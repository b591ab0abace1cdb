"""Slow consumers, heartbeats and reaping, and the per-socket limits."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import aiohttp
import orjson
from server_harness import Harness, until

from tidings.server.protocol import CLOSE_HEARTBEAT, CLOSE_SLOW_CONSUMER


class StalledSocket:
    """A WebSocket client that completes the handshake and then does not read,
    with a tiny receive buffer so the server's writes back up quickly."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setblocking(False)
        self.address = (host, int(port))
        self.token = token
        self.buffer = b""

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, self.address)
        request = (
            f"GET /ws?token={self.token} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        await loop.sock_sendall(self.sock, request.encode())
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await loop.sock_recv(self.sock, 1)  # the headers only

    async def close_code(self) -> int | None:
        """Read everything the server sent; the code of its close frame, if any."""
        loop = asyncio.get_running_loop()
        self.buffer = b""
        while True:
            found = self._close_frame()
            if found is not None:
                return found
            chunk = await loop.sock_recv(self.sock, 65536)
            if not chunk:
                return None
            self.buffer += chunk

    def _close_frame(self) -> int | None:
        data = self.buffer
        while len(data) >= 2:
            opcode, length = data[0] & 0x0F, data[1] & 0x7F
            offset = 2
            if length == 126:
                (length,), offset = struct.unpack("!H", data[2:4]), 4
            elif length == 127:
                (length,), offset = struct.unpack("!Q", data[2:10]), 10
            if len(data) < offset + length:
                return None
            if opcode == 0x8:
                if length < 2:
                    return 1005  # RFC 6455: no status code present
                (code,) = struct.unpack("!H", data[offset : offset + 2])
                return int(code)
            data = data[offset + length :]
            self.buffer = data
        return None

    def close(self) -> None:
        self.sock.close()


async def test_a_slow_consumer_is_cut_off_while_others_keep_receiving(make_server: Any) -> None:
    server: Harness = await make_server(
        outbound_queue=8, messages_per_second=10_000.0, message_burst=10_000
    )
    alice, bob, carol = [await server.user(n) for n in ("alice", "bob", "carol")]
    group = await alice.create_group("busy", members=["bob", "carol"])
    stalled = StalledSocket(server.url, bob.token or "")
    try:
        await stalled.open()
        sent = await _flood_until_cut_off(server, alice, carol, group["conversation"], stalled)
    finally:
        stalled.close()

    # Reconnecting, bob's device finds everything by syncing.
    bob_live = await server.live(bob)
    kinds = []
    while len([k for k in kinds if k == "data"]) < sent:
        kinds.append((await bob_live.next(timeout=5))["message"]["kind"])


async def _flood_until_cut_off(
    server: Harness, alice: Any, carol: Any, conversation: str, stalled: StalledSocket
) -> int:
    await until(lambda: server.state.hub.online("bob"))
    alice_live, carol_live = await server.live(alice), await server.live(carol)

    [stalled_conn] = server.state.hub.connections("bob")
    # Large pushes fill the stalled socket's buffers (the kernel's take a few MB).
    blob = "x" * 50_000
    sent = 0
    while stalled_conn.closed_with is None:
        await alice_live.send(conversation, data={"blob": blob})
        sent += 1
        assert sent < 1000, "the stalled socket was never cut off"
    assert stalled_conn.closed_with == CLOSE_SLOW_CONSUMER

    for live in (alice_live, carol_live):
        data_messages = 0
        while data_messages < sent:
            event = await live.next(timeout=5)
            data_messages += event["message"]["kind"] == "data"
    assert server.state.metrics.overflows._value.get() == 1
    # Its close frame follows what was already in its buffers (unless the
    # server had to drop the connection outright).
    assert await stalled.close_code() in (CLOSE_SLOW_CONSUMER, None)
    return sent


async def test_quiet_sockets_are_pinged_and_silent_ones_reaped(make_server: Any) -> None:
    server: Harness = await make_server(heartbeat=30.0)
    alice = await server.user("alice")
    token = {"token": alice.token or ""}
    # One after the other, so the hub lists them in this order.
    answering = await alice.http.ws_connect(alice.ws_url(), params=token, autoping=False)
    assert orjson.loads((await answering.receive(timeout=5)).data)["op"] == "ready"
    silent = await alice.http.ws_connect(alice.ws_url(), params=token, autoping=False)
    assert orjson.loads((await silent.receive(timeout=5)).data)["op"] == "ready"
    answering_conn, silent_conn = server.state.hub.connections("alice")

    server.clock.advance(30.0)  # a heartbeat interval of silence: both are pinged
    server.state.hub.sweep(server.clock())
    for ws in (answering, silent):
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.PING
    await answering.pong()
    await until(lambda: answering_conn.session.last_inbound == server.clock())

    server.clock.advance(60.0)  # three intervals since the silent one last spoke
    server.state.hub.sweep(server.clock())
    closed = await silent.receive(timeout=5)
    assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == CLOSE_HEARTBEAT
    assert silent_conn.closed_with == CLOSE_HEARTBEAT and answering_conn.closed_with is None
    await until(lambda: server.state.hub.connections("alice") == [answering_conn])
    await answering.send_str('{"op": "ping"}')
    reply = await answering.receive(timeout=5)
    assert reply.type is aiohttp.WSMsgType.PING  # its second ping is due too
    assert orjson.loads((await answering.receive(timeout=5)).data)["op"] == "pong"
    await answering.close()
    await silent.close()
