"""``tidings admin groups``: list groups (id, type, members, owner, name)."""

from __future__ import annotations

import argparse
from typing import Any

from . import configure_store, run_with_context


def configure(parser: argparse.ArgumentParser) -> None:
    configure_store(parser)


def run(args: argparse.Namespace) -> int:
    async def action(ctx: Any) -> None:
        after = None
        while True:
            page = await ctx.store.find_meta("group:", after=after, limit=1000)
            for record_id, group in page:
                gid = record_id.removeprefix("group:")
                print(
                    f"{gid}\t{group.get('type')}\t{group.get('member_count')}"
                    f"\t{group.get('owner')}\t{group.get('name')}"
                )
            if len(page) < 1000:
                return
            after = page[-1][0]

    return run_with_context(args, action)
