"""The WebSocket half of the Python client: sends that survive reconnects and an
ordered, gap-free, duplicate-free stream of inbox events.

The client keeps ``last``, the highest inbox seq handed to the application.
A pushed event right after ``last`` is handed over at once; anything else
triggers a sync from ``last`` (pushes that arrive meanwhile wait in a buffer),
so every event is handed over exactly once, in inbox order, whatever the
network does. See docs/protocol.md, "The delivery contract".
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from .http import ApiError, Client

log = logging.getLogger(__name__)

# Close codes after which reconnecting cannot help (see docs/protocol.md).
FATAL_CLOSE_CODES = {4001: "unauthorized", 4003: "session_revoked", 4029: "too_many_connections"}
# Error codes after which a send is retried rather than failed.
RETRYABLE = {"rate_limited", "unavailable", "internal"}
_END: dict[str, Any] = {"op": "__end__"}


class ConnectionLost(Exception):
    """The socket went away while a request waited for its reply."""


class Live:
    """A live session over ``/ws`` for a logged-in :class:`Client`.

    Args:
        client: a client holding a session token.
        cursor: the inbox seq up to which the application already has events
            (e.g. saved from a previous run); None starts from the cursor the
            server stored for this device.
        ephemeral: also yield typing, presence and group-head frames (dicts
            with an ``op``) among the inbox events.
        reconnect: reconnect (with backoff) when the socket drops.
        resend_after: seconds without an ack before a send is sent again.
        request_timeout: seconds to wait for the reply to a request (sync…).
    """

    def __init__(
        self,
        client: Client,
        *,
        cursor: int | None = None,
        ephemeral: bool = False,
        reconnect: bool = True,
        resend_after: float = 10.0,
        request_timeout: float = 30.0,
        max_backoff: float = 2.0,
    ) -> None:
        self.client = client
        self.last = cursor
        self.ephemeral = ephemeral
        self.reconnect = reconnect
        self.resend_after = resend_after
        self.request_timeout = request_timeout
        self.max_backoff = max_backoff
        self.ready: dict[str, Any] | None = None
        self.connections = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pending: dict[str, tuple[bytes, asyncio.Future[dict[str, Any]]]] = {}
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._buffer: dict[int, dict[str, Any]] = {}
        self._sync_task: asyncio.Task[None] | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._refs = itertools.count(1)
        self._closed = False
        self._failure: BaseException | None = None
        self._handed: int | None = None
        self._confirmed = 0

    # -- life cycle ----------------------------------------------------------------

    async def start(self) -> Live:
        """Connect and catch up; returns once the first socket is ready."""
        self._run_task = asyncio.create_task(self._run())
        await self.wait_connected()
        return self

    async def wait_connected(self) -> None:
        waiter = asyncio.create_task(self._connected.wait())
        assert self._run_task is not None
        await asyncio.wait({waiter, self._run_task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._failure is not None:
            raise self._failure

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
        if self._run_task is not None:
            self._run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._run_task
        self._end(ConnectionLost("closed"))

    async def __aenter__(self) -> Live:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            try:
                ws = await self.client.http.ws_connect(
                    self.client.ws_url(), params={"token": self.client.token or ""}
                )
            except (aiohttp.ClientError, OSError) as exc:
                log.info("connect failed: %s", exc)
            else:
                await self._session(ws)
                if ws.close_code in FATAL_CLOSE_CODES:
                    code = FATAL_CLOSE_CODES[ws.close_code]
                    self._end(ApiError(code, f"the server closed the socket ({ws.close_code})"))
                    return
                attempt = 0 if self.ready else attempt
            if not self.reconnect or self._closed:
                self._end(ConnectionLost("the socket closed"))
                return
            attempt += 1
            await asyncio.sleep(min(self.max_backoff, 0.05 * 2**attempt) * random.uniform(0.5, 1))

    async def _session(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            first = await ws.receive()
            if first.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                return
            ready = orjson.loads(first.data)
            if ready.get("op") != "ready":
                return
            self._on_ready(ready, ws)
            for data, _ in list(self._pending.values()):
                await ws.send_frame(data, aiohttp.WSMsgType.TEXT)
            self._start_sync()
            async for msg in ws:
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self._on_frame(orjson.loads(msg.data))
        except (aiohttp.ClientError, ConnectionError) as exc:
            log.info("socket lost: %s", exc)
        finally:
            self._ws = None
            self._connected.clear()
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionLost("the socket closed"))
            self._replies.clear()
            await ws.close()

    def _on_ready(self, ready: dict[str, Any], ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ready = ready
        self.connections += 1
        if self.last is None:
            self.last = int(ready["cursor"])
        self._confirmed = max(self._confirmed, int(ready["cursor"]))
        self._ws = ws
        self._connected.set()

    def _end(self, failure: BaseException) -> None:
        if self._failure is None:
            self._failure = failure
            self._queue.put_nowait(_END)
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(failure)
        self._pending.clear()

    # -- frames in -------------------------------------------------------------------

    def _on_frame(self, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        if op == "event":
            self._on_event(frame["event"])
        elif op == "ack":
            entry = self._pending.pop(str(frame.get("client_msg_id")), None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(frame)
        elif op == "error":
            self._on_error(frame)
        elif op in ("typing", "presence", "group_head"):
            if self.ephemeral:
                self._queue.put_nowait(frame)
        else:
            future = self._replies.pop(str(frame.get("ref")), None)
            if future is not None and not future.done():
                future.set_result(frame)

    def _on_error(self, frame: dict[str, Any]) -> None:
        ref = str(frame.get("ref"))
        error = ApiError.from_body(frame)
        if ref in self._pending:
            data, future = self._pending[ref]
            if error.code in RETRYABLE:
                delay = float(error.details.get("retry_after", 0.5))
                asyncio.get_running_loop().call_later(delay, self._resend, ref)
                return
            del self._pending[ref]
            if not future.done():
                future.set_exception(error)
        elif ref in self._replies:
            future = self._replies.pop(ref)
            if not future.done():
                future.set_exception(error)
        else:
            log.warning("error frame: %s", error)

    def _on_event(self, event: dict[str, Any]) -> None:
        assert self.last is not None
        seq = int(event["inbox_seq"])
        if seq <= self.last:
            return  # already handed over (pushed and synced both)
        if self._syncing or seq != self.last + 1:
            self._buffer[seq] = event
            self._start_sync()
            return
        self._hand_over(event)

    def _hand_over(self, event: dict[str, Any]) -> None:
        self.last = int(event["inbox_seq"])
        self._queue.put_nowait(event)

    # -- sync ------------------------------------------------------------------------

    @property
    def _syncing(self) -> bool:
        return self._sync_task is not None and not self._sync_task.done()

    def _start_sync(self) -> None:
        if not self._syncing:
            self._sync_task = asyncio.create_task(self._sync())

    async def _sync(self) -> None:
        # A lost socket or a slow reply ends this attempt; the next reconnect
        # or gap starts another.
        with contextlib.suppress(ConnectionLost, TimeoutError, ApiError):
            await self.sync()

    async def sync(self) -> None:
        """Fetch every inbox event after ``last`` and hand them over, in order."""
        while True:
            assert self.last is not None
            reply = await self.request("sync", after=self.last, limit=500)
            if reply["reset"]:
                self._queue.put_nowait({"type": "reset", "cursor": reply["cursor"]})
            for event in reply["events"]:
                if event["inbox_seq"] > self.last:
                    self._hand_over(event)
            if reply["reset"]:
                self.last = max(self.last, int(reply["cursor"]))
            if reply["has_more"]:
                continue
            while self.last + 1 in self._buffer:
                self._hand_over(self._buffer.pop(self.last + 1))
            self._buffer = {s: e for s, e in self._buffer.items() if s > self.last}
            if not self._buffer:
                return

    # -- frames out ------------------------------------------------------------------

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request frame and wait for its reply.

        Raises:
            ApiError: the server refused. ConnectionLost: the socket dropped.
            TimeoutError: no reply within ``request_timeout`` seconds.
        """
        ws = self._ws
        if ws is None:
            raise ConnectionLost("not connected")
        ref = f"r{next(self._refs)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[ref] = future
        try:
            await ws.send_frame(
                orjson.dumps({"op": op, "ref": ref, **fields}), aiohttp.WSMsgType.TEXT
            )
            done, _ = await asyncio.wait({future}, timeout=self.request_timeout)
        finally:
            self._replies.pop(ref, None)
        if not done:
            raise TimeoutError(f"no reply to {op} within {self.request_timeout:g} s")
        return future.result()

    async def send(
        self,
        conversation: str,
        text: str | None = None,
        *,
        data: dict[str, Any] | None = None,
        client_msg_id: str | None = None,
        mentions: list[str] | None = None,
    ) -> dict[str, Any]:
        """Send a message; returns its ack once committed.

        The message gets a client message id (unless given) and is sent again
        after a reconnect or ``resend_after`` seconds until acked: the server
        commits it once.

        Raises:
            ApiError: the server refused it (not allowed, invalid…).
        """
        cid = client_msg_id or uuid.uuid4().hex
        frame: dict[str, Any] = {"op": "send", "ref": cid, "conversation": conversation}
        frame.update(
            (k, v)
            for k, v in (("text", text), ("data", data), ("mentions", mentions))
            if v is not None
        )
        frame["client_msg_id"] = cid
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cid] = (orjson.dumps(frame), future)
        while True:
            await self._resend_now(cid)
            # asyncio.wait, not wait_for: it never swallows a cancellation that
            # races with the ack (wait_for does, on Python 3.11).
            done, _ = await asyncio.wait({future}, timeout=self.resend_after)
            if done:
                return future.result()

    def _resend(self, cid: str) -> None:
        asyncio.ensure_future(self._resend_now(cid))

    async def _resend_now(self, cid: str) -> None:
        entry = self._pending.get(cid)
        ws = self._ws
        if entry is None or ws is None:
            return  # acked already, or sent on reconnect
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await ws.send_frame(entry[0], aiohttp.WSMsgType.TEXT)

    async def typing(self, conversation: str) -> None:
        if self._ws is not None:
            frame = orjson.dumps({"op": "typing", "conversation": conversation})
            await self._ws.send_frame(frame, aiohttp.WSMsgType.TEXT)

    async def confirm(self) -> int:
        """Tell the server this device has processed its inbox up to what the
        application has taken. Returns the stored cursor."""
        upto = self._handed if self._handed is not None else self._confirmed
        reply = await self.request("confirm", cursor=upto)
        self._confirmed = int(reply["cursor"])
        return self._confirmed

    # -- events in -------------------------------------------------------------------

    async def next(self, timeout: float | None = None) -> dict[str, Any]:
        """The next event (waiting at most ``timeout`` seconds).

        Raises:
            TimeoutError; ApiError or ConnectionLost once the session has ended.
        """
        if self._queue.empty() and self._handed is not None and self._handed > self._confirmed:
            with contextlib.suppress(ConnectionLost, ApiError, ConnectionError, TimeoutError):
                await self.confirm()
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if item is _END:
            self._queue.put_nowait(_END)
            assert self._failure is not None
            raise self._failure
        if "inbox_seq" in item:
            self._handed = int(item["inbox_seq"])
        return item

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Async iterator over events until the session ends for good."""
        while True:
            try:
                yield await self.next()
            except ConnectionLost:
                return
