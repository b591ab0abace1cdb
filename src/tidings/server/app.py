"""The aiohttp application: routes, error mapping, request ids, heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from typing import Any

from aiohttp import web

from ..config import Settings
from ..errors import (
    Internal,
    MethodNotAllowed,
    NotFound,
    TidingsError,
    TooLarge,
    Unavailable,
)
from ..im import Context, IMSettings, accounts
from ..timeline import Store
from . import api_accounts, api_messages, api_search, api_social, openapi, webroot
from .bus import Bus, open_bus
from .hub import Hub
from .metrics import CONTENT_TYPE, Metrics
from .protocol import CLOSE_GOING_AWAY
from .routes import RawHandler, Route, endpoint, json_response
from .state import REQUEST_ID, STATE_KEY, Clock, ServerState
from .ws import websocket

log = logging.getLogger(__name__)

# A client-supplied request id is kept when it looks like one (for tracing
# across a proxy), else a fresh one is made.
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Sockets get this long to close on shutdown before they are dropped.
SHUTDOWN_GRACE = 5.0
SWEEPER_KEY: web.AppKey[asyncio.Task[None]] = web.AppKey("tidings_sweeper", asyncio.Task)
RECHECKER_KEY: web.AppKey[asyncio.Task[None]] = web.AppKey("tidings_rechecker", asyncio.Task)
# Seconds between checks that open sockets' sessions are still valid (one
# metadata read per socket): how long a socket outlives its token's expiry or
# an operator's password reset at most.
SESSION_RECHECK = 60.0
# Every this many rechecks (an hour), the token and device records of expired
# sessions are deleted (every node does it; deleting twice is harmless).
SESSION_PURGE_ROUNDS = 60
OPENAPI_KEY: web.AppKey[dict[str, Any]] = web.AppKey("tidings_openapi", dict)


def error_response(error: TidingsError) -> web.Response:
    response = json_response({"error": error.to_dict()}, error.status)
    retry = error.details.get("retry_after")
    if isinstance(retry, int | float):
        response.headers["Retry-After"] = str(max(1, round(retry)))
    return response


def _http_error(exc: web.HTTPException) -> TidingsError:
    if exc.status == 404:
        return NotFound("no such route")
    if exc.status == 405:
        return MethodNotAllowed("this route does not take this method")
    if exc.status == 413:
        return TooLarge("the request body is too large")
    error = TidingsError(exc.reason)
    error.status = exc.status  # type: ignore[misc]
    return error


@web.middleware
async def middleware(request: web.Request, handler: RawHandler) -> web.StreamResponse:
    """Request id, error mapping, access log and metrics for every request."""
    state = request.app[STATE_KEY]
    given = request.headers.get("X-Request-Id", "")
    request_id = given if REQUEST_ID_RE.fullmatch(given) else secrets.token_hex(6)
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    try:
        response = await handler(request)
    except TidingsError as exc:
        if isinstance(exc, Unavailable):
            state.metrics.db_errors.inc()
        response = error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(_http_error(exc))
    except Exception:
        log.exception("req=%s %s %s failed", request_id, request.method, request.path)
        response = error_response(Internal())
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    state.metrics.requests.labels(f"{response.status // 100}xx").inc()
    log.info(
        "req=%s method=%s path=%s status=%d ms=%.1f",
        request_id,
        request.method,
        request.path,
        response.status,
        (time.perf_counter() - started) * 1000,
    )
    return response


async def healthz(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    await state.ctx.store.last_seq("health:check")
    return json_response({"status": "ok", "connections": len(state.hub)})


async def metrics(request: web.Request) -> web.StreamResponse:
    body = request.app[STATE_KEY].metrics.render()
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE.split(";")[0]
    return response


async def openapi_json(request: web.Request) -> web.StreamResponse:
    return json_response(request.app[OPENAPI_KEY])


def operator_routes(index: RawHandler) -> list[Route]:
    return [
        Route(
            "GET",
            "/",
            "The web client (or a page saying it is not built)",
            tag="web",
            auth=False,
            raw=index,
            content_type="text/html",
        ),
        Route(
            "GET",
            "/healthz",
            "Liveness and database check",
            tag="operators",
            auth=False,
            raw=healthz,
        ),
        Route(
            "GET",
            "/metrics",
            "Prometheus metrics",
            tag="operators",
            auth=False,
            raw=metrics,
            content_type="text/plain",
        ),
        Route(
            "GET", "/openapi.json", "This document", tag="operators", auth=False, raw=openapi_json
        ),
        Route(
            "GET",
            "/ws",
            "The WebSocket (frames: docs/protocol.md); token in ?token= or a first auth frame",
            tag="realtime",
            auth=False,
            raw=websocket,
            status=101,
            extra={
                "parameters": [
                    {
                        "name": "token",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    }
                ]
            },
        ),
    ]


def all_routes(index: RawHandler) -> list[Route]:
    return [
        *api_accounts.ROUTES,
        *api_social.ROUTES,
        *api_messages.ROUTES,
        *api_search.ROUTES,
        *operator_routes(index),
    ]


async def _sweep_forever(state: ServerState) -> None:
    # Checking three times per heartbeat interval keeps pings within a third
    # of an interval of being due.
    while True:
        await asyncio.sleep(state.settings.heartbeat / 3)
        state.hub.sweep(state.clock())


async def _recheck_forever(state: ServerState) -> None:
    """Every ``SESSION_RECHECK`` seconds, close the sockets whose session has
    expired or was signed out without a push reaching this node; now and then,
    delete the records of expired sessions."""
    store = state.ctx.store

    async def signed_in(user: str, device: str) -> bool:
        try:
            return await store.get_meta(f"device:{user}:{device}") is not None
        except TidingsError:
            return True  # the store is unreachable: ask again next round

    rounds = 0
    while True:
        await asyncio.sleep(SESSION_RECHECK)
        await state.hub.recheck(signed_in, state.ctx.now())
        rounds += 1
        if rounds % SESSION_PURGE_ROUNDS == 0:
            try:
                purged = await accounts.purge_expired_sessions(state.ctx)
            except TidingsError as exc:
                log.warning("expired sessions not purged: %s", exc)
            else:
                log.info("purged %d expired sessions", purged)


async def _start(app: web.Application) -> None:
    hub = app[STATE_KEY].hub
    await hub.bus.start(hub)
    app[SWEEPER_KEY] = asyncio.create_task(_sweep_forever(app[STATE_KEY]))
    app[RECHECKER_KEY] = asyncio.create_task(_recheck_forever(app[STATE_KEY]))


async def _close_bus(app: web.Application) -> None:
    await app[STATE_KEY].hub.bus.close()


async def _shutdown(app: web.Application) -> None:
    """Close every socket with 1001 "going away" and wait for them to go."""
    for key in (SWEEPER_KEY, RECHECKER_KEY):
        task = app.get(key)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    hub = app[STATE_KEY].hub
    hub.close_all(CLOSE_GOING_AWAY, "server shutting down")
    await hub.drained(SHUTDOWN_GRACE)


def create_app(
    settings: Settings,
    store: Store,
    *,
    im_settings: IMSettings | None = None,
    clock: Clock = time.monotonic,
    bus: Bus | None = None,
) -> web.Application:
    """Build the server over an opened store (the caller closes the store).

    Args:
        settings: limits and the web folder.
        store: the timeline store.
        im_settings: the IM layer's settings (default: from ``settings``).
        clock: monotonic seconds for heartbeats and rate limits (tests pass a
            fake one).
        bus: the bus to other nodes (default: the one ``settings.bus`` names).
    """
    metrics_ = Metrics()
    hub = Hub(metrics_, settings.max_connections_per_user, bus=bus or open_bus(settings.bus))
    ctx = Context(store, im_settings or settings.im_settings(), publish=hub.publish)
    state = ServerState(settings, ctx, hub, metrics_, clock)
    app = web.Application(middlewares=[middleware], client_max_size=settings.max_body_bytes)
    app[STATE_KEY] = state
    dist = webroot.find_dist(settings)
    routes = all_routes(webroot.index_handler(dist)) + webroot.file_routes(dist)
    for route in routes:
        app.router.add_route(route.method, route.path, endpoint(route))
    webroot.add_assets(app, dist)
    app[OPENAPI_KEY] = openapi.document(routes)
    app.on_startup.append(_start)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_close_bus)
    return app
