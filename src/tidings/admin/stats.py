"""``tidings admin stats``: counts of users, devices, groups, and the store size."""

from __future__ import annotations

import argparse
import os
from typing import Any

from . import configure_store, run_with_context

COUNTED = {"users": "user:", "devices": "device:", "groups": "group:"}


async def count(ctx: Any, prefix: str) -> int:
    total, after = 0, None
    while True:
        page = await ctx.store.find_meta(prefix, after=after, limit=1000)
        total += len(page)
        if len(page) < 1000:
            return total
        after = page[-1][0]


def configure(parser: argparse.ArgumentParser) -> None:
    configure_store(parser)


def run(args: argparse.Namespace) -> int:
    async def action(ctx: Any) -> None:
        for name, prefix in COUNTED.items():
            print(f"{name}\t{await count(ctx, prefix)}")
        path = getattr(ctx.store.backend, "path", None)
        if path and os.path.exists(path):
            print(f"database_bytes\t{os.path.getsize(path)}")

    return run_with_context(args, action)
