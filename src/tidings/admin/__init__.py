"""``tidings admin …``: operator commands over the same store the server uses.

Each command is a module with ``configure(parser)`` and ``run(args)``, wired
up in :mod:`tidings.cli`. They open the store directly (SQLite allows this
while the server runs; writes wait for the server's commits).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .. import config
from ..errors import TidingsError

T = TypeVar("T")


def configure_store(parser: argparse.ArgumentParser) -> None:
    """The flags that say where the store is (and the rest of the settings)."""
    config.add_arguments(parser)


def run_with_context(args: argparse.Namespace, action: Callable[[Any], Awaitable[T]]) -> int:
    """Open the store, run ``action(ctx)``, close the store; print errors plainly."""

    async def main() -> T:
        from ..im import Context
        from ..server.runner import open_server_store

        settings = config.load_settings(args)
        store = await open_server_store(settings)
        try:
            return await action(Context(store, settings.im_settings()))
        finally:
            await store.close()

    try:
        asyncio.run(main())
    except TidingsError as exc:
        print(f"tidings admin: {exc.code}: {exc.message}")
        return 1
    return 0
