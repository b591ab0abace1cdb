"""``tidings serve``: open the store and run until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from . import config


def configure(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    settings = config.load_settings(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(message)s")
    asyncio.run(_serve(settings))
    return 0


async def _serve(settings: config.Settings) -> None:
    from .timeline import open_store

    store = await open_store(settings.db_url)
    print(f"tidings: store open at {settings.db_url}; the server itself is not built yet")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await store.close()
