"""``tidings admin users``: list users (username, display name, created)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from . import configure_store, run_with_context


def configure(parser: argparse.ArgumentParser) -> None:
    configure_store(parser)


def run(args: argparse.Namespace) -> int:
    async def action(ctx: Any) -> None:
        from ..im import accounts

        after = None
        while True:
            page = await accounts.users(ctx, after=after, limit=1000)
            for user in page:
                created = time.strftime("%Y-%m-%d", time.gmtime(user.get("created_at", 0)))
                print(f"{user['username']}\t{user.get('display_name', '')}\t{created}")
            if len(page) < 1000:
                return
            after = page[-1]["username"]

    return run_with_context(args, action)
