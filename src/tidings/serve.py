"""``tidings serve``: run the server until interrupted."""

from __future__ import annotations

import argparse
import asyncio

from . import config


def configure(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    settings = config.load_settings(args)
    from .server import serve
    from .server.logs import configure as configure_logs

    configure_logs(settings.log_level)
    if settings.workers > 1:
        from .server.supervisor import supervise

        asyncio.run(supervise(settings))
        return 0
    try:
        import uvloop
    except ImportError:  # not on Windows: the standard loop serves too
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))
    return 0
