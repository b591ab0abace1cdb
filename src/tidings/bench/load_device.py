"""One simulated device of ``tidings bench load``: a lean WebSocket client.

It follows the delivery contract of docs/protocol.md like any client (push in
inbox order, sync on a gap, pull read-fan-out groups on ``group_head``) but
does nothing else, so that one client process can drive thousands of sockets.
Every message it gets goes to the process's :class:`~.load_verify.Verifier`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import orjson

if TYPE_CHECKING:
    from .load_worker import Worker

TEXT = aiohttp.WSMsgType.TEXT
# Error codes after which a send is tried again (the others count as errors).
RETRYABLE = {"rate_limited", "unavailable"}
# Inbox events per sync request: the protocol's largest page.
SYNC_PAGE = 1000
# History messages per pull of a read-fan-out group: the largest page.
PULL_PAGE = 200
# A reconnect that fails this many times in a row (backing off) fails the run.
RECONNECT_ATTEMPTS = 5


class Device:
    """One logged-in user's socket, with its inbox position and its sends."""

    def __init__(self, worker: Worker, user: str, token: str, *, timed: bool = True) -> None:
        self.worker = worker
        self.user = user
        self.token = token
        # Late devices sync messages sent long ago: their latency means nothing.
        self.timed = timed
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.last: int | None = None
        self.caught_up = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        # Set while the socket is open for sending (cleared during a reconnect).
        self.open = asyncio.Event()
        self.window = asyncio.Semaphore(worker.scenario.window)
        self.seen: dict[str, int] = {}
        self._buffer: dict[int, dict[str, Any]] = {}
        self._syncing = False
        self._pending: dict[int, tuple[str, float, bytes]] = {}
        self._refs = itertools.count(1)
        self._next_n: dict[str, int] = {}
        self._heads: dict[str, int] = {}
        self._pulled: dict[str, int] = {}
        self._pulling: set[str] = set()
        self._reader: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """Whether a sync or a pull is in progress."""
        return self._syncing or bool(self._pulling)

    # -- connection ---------------------------------------------------------------

    async def connect(self) -> None:
        """Open the socket; catch up by sync when the inbox is ahead."""
        ws = await self.worker.http.ws_connect(
            self.worker.ws_url, params={"token": self.token}, compress=0
        )
        ready = orjson.loads((await ws.receive()).data)
        if ready.get("op") != "ready":
            raise RuntimeError(f"{self.user}: no ready frame: {ready}")
        self.ws = ws
        self._syncing = False
        self._buffer.clear()
        if self.last is None:
            self.last = int(ready["cursor"])
        self._reader = asyncio.create_task(self._read(ws))
        self.open.set()
        if ready["inbox_head"] > self.last:
            self._sync()
        else:
            self.caught_up.set()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader

    async def reconnect(self, pause: float) -> None:
        """Drop the socket (once no send is in flight), wait, come back, sync."""
        self.open.clear()
        await self.idle.wait()
        await self.close()
        for attempt in range(RECONNECT_ATTEMPTS):
            await asyncio.sleep(pause * 2**attempt)
            try:
                await self.connect()
            except (aiohttp.ClientError, OSError):
                if attempt == RECONNECT_ATTEMPTS - 1:
                    raise
            else:
                break
        self.worker.reconnects += 1

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        handle = self._frame
        async for msg in ws:
            if msg.type is TEXT:
                handle(orjson.loads(msg.data))

    def _frame(self, frame: dict[str, Any]) -> None:
        self.worker.activity += 1
        op = frame["op"]
        if op == "event":
            self._event(frame["event"])
        elif op == "ack":
            self._ack(frame)
        elif op == "synced":
            self._synced(frame)
        elif op == "group_head":
            self._head(frame["conversation"], frame["seq"])
        elif op == "error":
            self._error(frame)
        # typing, marked, pong: nothing to check

    def _write(self, frame: dict[str, Any]) -> None:
        if self.ws is not None and not self.ws.closed:
            self.worker.spawn(_send_quietly(self.ws, orjson.dumps(frame)))

    # -- inbox ----------------------------------------------------------------------

    def _event(self, event: dict[str, Any]) -> None:
        seq = event["inbox_seq"]
        assert self.last is not None
        if seq <= self.last:
            self.worker.redundant += 1
        elif self._syncing or seq > self.last + 1:
            self._buffer[seq] = event
            if not self._syncing:
                self._sync()
        else:
            self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        self.last = event["inbox_seq"]
        if event["type"] == "message":
            message = event["message"]
            self.seen[message["conversation"]] = message["seq"]
            self.worker.verifier.deliver(self.user, message, time.time(), timed=self.timed)

    def _sync(self) -> None:
        self._syncing = True
        self.caught_up.clear()
        self._write({"op": "sync", "after": self.last, "limit": SYNC_PAGE})

    def _synced(self, frame: dict[str, Any]) -> None:
        assert self.last is not None
        for event in frame["events"]:
            if event["inbox_seq"] > self.last:
                self._apply(event)
        self.last = max(self.last, frame["cursor"])
        for conversation, head in frame["heads"].items():
            self._head(conversation, head)
        if frame["has_more"]:
            self._sync()
            return
        while self.last + 1 in self._buffer:
            self._apply(self._buffer.pop(self.last + 1))
        self._buffer = {s: e for s, e in self._buffer.items() if s > self.last}
        if self._buffer:
            self._sync()
            return
        self._syncing = False
        self.caught_up.set()

    # -- read fan-out -----------------------------------------------------------------

    def _head(self, conversation: str, seq: int) -> None:
        self._heads[conversation] = max(seq, self._heads.get(conversation, 0))
        if conversation not in self._pulling and seq > self._pulled.get(conversation, 0):
            self._pulling.add(conversation)
            self.worker.spawn(self._pull(conversation))

    async def _pull(self, conversation: str) -> None:
        """Fetch the group's history from where this device is up to the head."""
        url = f"{self.worker.api_url}/conversations/{quote(conversation, safe=':')}/messages"
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            while self._heads[conversation] > self._pulled.get(conversation, 0):
                params = {"after": self._pulled.get(conversation, 0), "limit": PULL_PAGE}
                async with (
                    self.worker.pull_gate,
                    self.worker.http.get(
                        url, params={**params, "direction": "forward"}, headers=headers
                    ) as response,
                ):
                    body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{self.user}: pull {response.status}: {body[:200]!r}")
                page = orjson.loads(body)
                self.worker.pulls += 1
                now = time.time()
                for message in page["messages"]:
                    self.worker.verifier.deliver(self.user, message, now, timed=self.timed)
                if page["messages"]:
                    self._pulled[conversation] = page["messages"][-1]["seq"]
                elif not page["has_more"]:  # nothing of it is visible to us
                    self._pulled[conversation] = self._heads[conversation]
        finally:
            self._pulling.discard(conversation)

    # -- sending ----------------------------------------------------------------------

    async def send(self, conversation: str, text: str) -> None:
        """Send one bench message once the window has room."""
        await self.window.acquire()
        await self.open.wait()
        n = self._next_n.get(conversation, 0)
        self._next_n[conversation] = n + 1
        ref = next(self._refs)
        sent_at = time.time()
        data = orjson.dumps(
            {
                "op": "send",
                "ref": ref,
                "conversation": conversation,
                "client_msg_id": str(ref),
                "text": text,
                "data": {"n": n, "t": sent_at},
            }
        )
        self._pending[ref] = (conversation, sent_at, data)
        self.idle.clear()
        self.worker.sent += 1
        assert self.ws is not None
        await self.ws.send_bytes(data)

    def _ack(self, frame: dict[str, Any]) -> None:
        pending = self._pending.pop(frame["ref"], None)
        if pending is None:
            return
        conversation, sent_at, _ = pending
        key = (self.user, conversation)
        self.worker.acked[key] = self.worker.acked.get(key, 0) + 1
        self.worker.ack_latencies.append(time.time() - sent_at)
        self._settled()

    def _error(self, frame: dict[str, Any]) -> None:
        pending = self._pending.get(frame.get("ref", -1))
        if pending is not None and frame["code"] in RETRYABLE:
            wait = float(frame.get("details", {}).get("retry_after", 0.1))
            self.worker.spawn(self._resend(pending[2], wait))
            return
        self.worker.errors += 1
        self.worker.last_error = f"{frame['code']}: {frame.get('message')}"
        if pending is not None:
            del self._pending[frame["ref"]]
            self._settled()

    async def _resend(self, data: bytes, wait: float) -> None:
        await asyncio.sleep(wait)
        if self.ws is not None:
            await _send_quietly(self.ws, data)

    def _settled(self) -> None:
        self.window.release()
        if not self._pending:
            self.idle.set()

    def typing(self, conversation: str) -> None:
        self.worker.typing += 1
        self._write({"op": "typing", "conversation": conversation})

    def mark_read(self, conversation: str) -> None:
        if conversation in self.seen:
            self.worker.reads += 1
            self._write(
                {"op": "read", "conversation": conversation, "seq": self.seen[conversation]}
            )


async def _send_quietly(ws: aiohttp.ClientWebSocketResponse, data: bytes) -> None:
    """Send a frame that may race a reconnect: lost with the socket, it is
    made up for by the sync after the reconnect (or the resend of a send)."""
    with contextlib.suppress(ConnectionError, aiohttp.ClientError):
        await ws.send_bytes(data)


def background(
    coroutine: Coroutine[Any, Any, None],
    tasks: set[asyncio.Task[None]],
    failure: asyncio.Future[BaseException],
) -> None:
    """Run ``coroutine`` as a task kept in ``tasks`` until it ends; its
    exception, if any, becomes the result of ``failure``."""
    task = asyncio.create_task(coroutine)
    tasks.add(task)

    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() and not failure.done():
            failure.set_result(task.exception())  # type: ignore[arg-type]

    task.add_done_callback(done)
