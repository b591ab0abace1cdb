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
    writer = asyncio.create_task(_write(state, conn, ws))
    try:
        await _serve(state, conn, ws, cursor)
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        for task in closing:
            await task
        if not ws.closed:
            await ws.close()
    return ws


async def _serve(
    state: ServerState, conn: Connection, ws: web.WebSocketResponse, cursor: int
) -> None:
    try:
        first = state.hub.add(conn)
    except TooManyConnections as exc:
        await ws.send_frame(p.error_frame(exc), TEXT)
        await ws.close(code=p.CLOSE_TOO_MANY, message=b"too many connections")
        return
    log.info("conn=%s user=%s device=%s connected", conn.id, conn.user, conn.device)
    try:
        state.hub.send(conn, await _ready(state, conn, cursor))
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
        await ws.close(code=p.CLOSE_UNAUTHORIZED, message=exc.code.encode())
        return None
    cursor = int(record.get("cursor", 0))
    session.authenticate(found.user, found.device, cursor)
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


async def _write(state: ServerState, conn: Connection, ws: web.WebSocketResponse) -> None:
    """Drain the connection's queue onto the socket, one frame at a time."""
    outbox = conn.outbox
    metrics = state.metrics
    try:
        while conn.closed_with is None:
            if not outbox:
                conn.wake.clear()
                await conn.wake.wait()
                continue
            data, stamp = outbox.popleft()
            if data is None:
                await ws.ping()
                continue
            await ws.send_frame(data, TEXT)
            if stamp:
                metrics.commit_to_push.observe(time.perf_counter() - stamp)
                metrics.pushes.inc()
    except (ConnectionError, RuntimeError):
        pass  # the peer went away; the reader sees it too and cleans up


async def _close(
    ws: web.WebSocketResponse,
    transport: Any,
    writer: asyncio.Task[None],
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
