"""The WebSocket endpoint ``/ws``: the transport around the protocol core.

This module only moves bytes: frames in go to :class:`~.protocol.Session` and
the operation handlers; frames out come from the connection's queue, written by
one writer task per socket. Nothing here waits on another socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from aiohttp import WSMsgType, web

from ..errors import Internal, TidingsError, TooManyConnections, Unauthorized, Unavailable
from ..im import accounts, names
from . import protocol as p
from .hub import Connection
from .operations import HANDLERS, announce_presence
from .state import REQUEST_ID, STATE_KEY, ServerState

log = logging.getLogger(__name__)

# A client has this long to authenticate after opening the socket.
AUTH_TIMEOUT = 10.0
# A close handshake waits this long for the peer before dropping the socket:
# a slow consumer may never read our close frame.
CLOSE_TIMEOUT = 2.0
# Frames over this many times the frame limit are not even read: close 1009.
HARD_FRAME_FACTOR = 4
# Frames queued together are written together, up to this many: a group
# commit pushes bursts, and one write (one system call) per burst instead of
# per frame was the largest saving on the push path (docs/benchmarks.md, "Load").
WRITE_BATCH = 64
# Past this many bytes waiting in the transport the writer waits for the peer
# (looking again every WRITE_POLL seconds), so that a slow reader's frames pile
# up in its outbox, where the slow-consumer limit sees them.
WRITE_BUFFER_HIGH = 64 * 1024
WRITE_POLL = 0.01
TEXT = WSMsgType.TEXT
BINARY = WSMsgType.BINARY


async def websocket(request: web.Request) -> web.StreamResponse:
    """Serve one socket: authenticate, register, read until closed."""
    state = request.app[STATE_KEY]
    settings = state.settings
    ws = web.WebSocketResponse(
        autoping=False,
        compress=False,
        decode_text=False,
        max_msg_size=settings.max_frame_bytes * HARD_FRAME_FACTOR,
        timeout=CLOSE_TIMEOUT,
    )
    transport = request.transport
    await ws.prepare(request)
    conn_id = request.get(REQUEST_ID) or secrets.token_hex(4)
    session = p.Session(state.clock(), settings.max_frame_bytes, settings.heartbeat)
    cursor = await _authenticate(state, ws, session, request.query.get("token"))
    if cursor is None:
        return ws
    closing: list[asyncio.Task[None]] = []

    def closer(code: int, reason: str) -> None:
        closing.append(asyncio.create_task(_close(ws, transport, writer, code, reason)))

    conn = Connection(conn_id, session, settings.outbound_queue, closer)
    writer = conn.wake = _Writer(state, conn, ws, transport)
    try:
        await _serve(state, conn, ws, cursor, writer)
    finally:
        await writer.stop()
        for task in closing:
            await task
        if not ws.closed:
            await ws.close()
    return ws


async def _serve(
    state: ServerState,
    conn: Connection,
    ws: web.WebSocketResponse,
    cursor: int,
    writer: _Writer,
) -> None:
    try:
        first = state.hub.add(conn)
    except TooManyConnections as exc:
        await ws.send_frame(p.error_frame(exc), TEXT)
        await ws.close(code=p.CLOSE_TOO_MANY, message=b"too many connections")
        return
    log.info("conn=%s user=%s device=%s connected", conn.id, conn.user, conn.device)
    try:
        # Pushes may be queued while ready is built (the socket is registered
        # first so that no commit is missed): ready still goes out first.
        conn.outbox.appendleft((await _ready(state, conn, cursor), 0.0))
        writer.greet()
        if first:
            await _announce(state, conn.user, True)
        await _read(state, conn, ws)
    finally:
        if state.hub.remove(conn):
            await _announce(state, conn.user, False)
        log.info(
            "conn=%s user=%s closed code=%s", conn.id, conn.user, conn.closed_with or ws.close_code
        )


async def _authenticate(
    state: ServerState, ws: web.WebSocketResponse, session: p.Session, token: str | None
) -> int | None:
    """Authenticate by the query token or a first ``auth`` frame. Returns the
    device's stored cursor, or None after closing the socket with 4001."""
    ref: p.Ref = None
    try:
        if token is None:
            token, ref = await _auth_frame(state, ws, session)
            if token is None:
                return None
        found = await accounts.authenticate(state.ctx, token)
        record = await state.ctx.store.get_meta(f"device:{found.user}:{found.device}") or {}
    except TidingsError as exc:
        with contextlib.suppress(ConnectionError):
            await ws.send_frame(p.error_frame(exc, ref), TEXT)
        # The database being down is no reason to log in again: try later.
        code = p.CLOSE_TRY_AGAIN if isinstance(exc, Unavailable) else p.CLOSE_UNAUTHORIZED
        await ws.close(code=code, message=exc.code.encode())
        return None
    cursor = int(record.get("cursor", 0))
    session.authenticate(found.user, found.device, cursor, found.expires_at)
    return cursor


async def _auth_frame(
    state: ServerState, ws: web.WebSocketResponse, session: p.Session
) -> tuple[str | None, p.Ref]:
    """Wait for the first frame, which must be ``auth``."""
    try:
        msg = await ws.receive(timeout=AUTH_TIMEOUT)
    except TimeoutError:
        raise Unauthorized(f"no auth frame within {AUTH_TIMEOUT:g} s") from None
    if msg.type not in (TEXT, BINARY):
        return None, None
    op = session.receive(msg.data, state.clock())
    if isinstance(op, p.Reject):
        if isinstance(op.error, Unauthorized):
            raise op.error
        raise Unauthorized(f"the first frame must be auth: {op.error.message}")
    assert isinstance(op, p.Auth)
    return op.token, op.ref


async def _ready(state: ServerState, conn: Connection, cursor: int) -> bytes:
    s = state.settings
    head = await state.ctx.store.last_seq(names.inbox(conn.user))
    return p.frame(
        "ready",
        user=conn.user,
        device=conn.device,
        cursor=cursor,
        inbox_head=head,
        heartbeat=s.heartbeat,
        limits={
            "max_frame_bytes": s.max_frame_bytes,
            "messages_per_second": s.messages_per_second,
            "burst": s.message_burst,
        },
    )


async def _announce(state: ServerState, user: str, online: bool) -> None:
    try:
        await announce_presence(state, user, online)
    except Exception:  # presence is best effort: never fail a connection for it
        log.warning("presence of %s not announced", user, exc_info=True)


async def _read(state: ServerState, conn: Connection, ws: web.WebSocketResponse) -> None:
    while conn.closed_with is None:
        msg = await ws.receive()
        kind = msg.type
        if kind is TEXT or kind is BINARY:
            await _handle(state, conn, msg.data)
        elif kind is WSMsgType.PING:
            conn.session.touch(state.clock())
            await ws.pong(msg.data)
        elif kind is WSMsgType.PONG:
            conn.session.touch(state.clock())
        else:  # CLOSE, CLOSING, CLOSED, ERROR
            return


async def _handle(state: ServerState, conn: Connection, data: bytes) -> None:
    op = conn.session.receive(data, state.clock())
    if isinstance(op, p.Reject):
        _refuse(state, conn, op.error, op.ref)
        return
    try:
        await HANDLERS[type(op)](state, conn, op)
    except TidingsError as exc:
        if isinstance(exc, Unavailable):
            state.metrics.db_errors.inc()
        _refuse(state, conn, exc, op.ref)
    except Exception:
        log.exception("conn=%s user=%s %s failed", conn.id, conn.user, type(op).__name__)
        _refuse(state, conn, Internal(), op.ref)


def _refuse(state: ServerState, conn: Connection, error: TidingsError, ref: p.Ref) -> None:
    state.metrics.rejected.labels(error.code).inc()
    state.hub.send(conn, p.error_frame(error, ref))


class _Writer(asyncio.Event):
    """Writes a connection's queued frames, standing in for its wake-up event.

    The hub sets the event when it queues a frame; that starts a task which
    writes until the outbox is empty and then ends, so that an idle socket
    holds no task (memory per idle socket: docs/benchmarks.md, "Load"). Nothing
    is written before :meth:`greet` (``ready`` goes out first).
    """

    def __init__(
        self, state: ServerState, conn: Connection, ws: web.WebSocketResponse, transport: Any
    ) -> None:
        super().__init__()
        self._state, self._conn, self._ws, self._transport = state, conn, ws, transport
        self._task: asyncio.Task[None] | None = None
        self._greeted = False

    def set(self) -> None:
        if self._greeted and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._drain())

    def greet(self) -> None:
        self._greeted = True
        self.set()

    def cancel(self) -> None:
        self._greeted = False
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        self.cancel()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _drain(self) -> None:
        """Write until the outbox is empty, the frames queued at the time in one write."""
        conn, outbox = self._conn, self._conn.outbox
        try:
            while outbox and conn.closed_with is None:
                if outbox[0][0] is None:
                    outbox.popleft()
                    await self._ws.ping()
                    continue
                batch: list[bytes] = []
                stamps: list[float] = []
                while outbox and len(batch) < WRITE_BATCH and outbox[0][0] is not None:
                    data, stamp = outbox.popleft()
                    batch.append(data)  # type: ignore[arg-type]
                    stamps.append(stamp)
                await _send(self._ws, self._transport, batch)
                _observe(self._state, stamps)
        except (ConnectionError, RuntimeError):
            pass  # the peer went away; the reader sees it too and cleans up


async def _send(ws: web.WebSocketResponse, transport: Any, frames: list[bytes]) -> None:
    if transport is None:  # not a plain socket: frame by frame through aiohttp
        for data in frames:
            await ws.send_frame(data, TEXT)
        return
    if transport.is_closing():
        raise ConnectionResetError("the socket is closing")
    transport.write(p.text_frames(frames))
    while transport.get_write_buffer_size() > WRITE_BUFFER_HIGH:
        if transport.is_closing():
            raise ConnectionResetError("the socket is closing")
        await asyncio.sleep(WRITE_POLL)


def _observe(state: ServerState, stamps: list[float]) -> None:
    """Count pushes (frames stamped when a commit queued them) and their delay."""
    now = time.perf_counter()
    metrics = state.metrics
    pushed = 0
    for stamp in stamps:
        if stamp:
            metrics.commit_to_push.observe(now - stamp)
            pushed += 1
    if pushed:  # one increment per write: each takes the metric's lock
        metrics.pushes.inc(pushed)


async def _close(
    ws: web.WebSocketResponse,
    transport: Any,
    writer: _Writer,
    code: int,
    reason: str,
) -> None:
    """Close with ``code``; drop the transport when the peer does not take it."""
    writer.cancel()
    try:
        await asyncio.wait_for(ws.close(code=code, message=reason.encode()), CLOSE_TIMEOUT)
    except (TimeoutError, ConnectionError, RuntimeError):
        if transport is not None:
            transport.abort()
