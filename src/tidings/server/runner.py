"""Run a server until SIGINT or SIGTERM: open the store, listen, shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from ..config import Settings
from ..im.search import SEARCH
from ..timeline import Store, open_store
from .app import SHUTDOWN_GRACE, create_app

log = logging.getLogger(__name__)


def redact(url: str) -> str:
    """The database URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


async def open_server_store(settings: Settings) -> Store:
    """The store with inbox retention set from the IM settings, indexed for search."""
    im = settings.im_settings()
    return await open_store(
        settings.db_url,
        retention={"inbox": im.inbox_ttl},
        synchronous=settings.sqlite_synchronous,
        search=SEARCH,
    )


def redact_bus(url: str) -> str:
    """The bus URLs without their passwords, for logs."""
    return ",".join(redact(part) for part in url.split(","))


def _bound_url(runner: web.AppRunner, settings: Settings) -> str:
    # Port 0 asks the system for a free port; report the one it gave.
    for address in runner.addresses:
        if isinstance(address, tuple):
            host = settings.host if ":" not in settings.host else f"[{settings.host}]"
            return f"http://{host}:{address[1]}/"
    return f"http://{settings.host}:{settings.port}/"


async def serve(
    settings: Settings,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until ``stop`` is set, or SIGINT / SIGTERM arrives.

    Shutdown stops accepting, closes sockets with 1001 "going away", then
    closes the store (which finishes the writes in flight).

    Args:
        settings: what to serve and how.
        stop: set to stop serving.
        on_ready: called with the URL once listening, instead of printing the
            "serving on" and "stopped" lines (a worker of ``--workers``).
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    store = await open_server_store(settings)
    try:
        runner = web.AppRunner(
            create_app(settings, store),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_GRACE,
        )
        await runner.setup()
        try:
            site = web.TCPSite(
                runner, settings.host, settings.port, reuse_port=settings.reuse_port or None
            )
            await site.start()
            url = _bound_url(runner, settings)
            if on_ready is not None:
                on_ready(url)
            else:
                bus = f", bus {redact_bus(settings.bus)}" if settings.bus else ""
                db = redact(settings.db_url)
                print(f"tidings: serving on {url} (database {db}{bus})", flush=True)
            await stop.wait()
            log.info("shutting down")
        finally:
            await runner.cleanup()
    finally:
        await store.close()
    if on_ready is None:
        print("tidings: stopped", flush=True)
