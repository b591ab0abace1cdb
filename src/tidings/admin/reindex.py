"""``tidings admin reindex``: rebuild the search index from the stored messages
and user and group records (messages stored before search existed, an index
made by an older Tidings), safe while the server is running."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from . import configure_store, run_with_context

# Seconds between two progress lines.
PROGRESS_INTERVAL_S = 2.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--full",
        action="store_true",
        help="drop the whole message index first (SQLite: needed after an upgrade that"
        " changes how text is split into terms; searches miss what is not rebuilt yet)",
    )
    configure_store(parser)


def run(args: argparse.Namespace) -> int:
    async def action(ctx: Any) -> None:
        from ..timeline import ReindexCounts

        started = last = time.monotonic()

        def progress(counts: ReindexCounts) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL_S:
                last = now
                print(
                    f"… {counts.timelines} conversations, {counts.entries} messages,"
                    f" {counts.meta} records ({now - started:.0f} s)",
                    flush=True,
                )

        counts = await ctx.store.reindex(full=args.full, progress=progress)
        print(f"conversations\t{counts.timelines}")
        print(f"messages\t{counts.entries}")
        print(f"records\t{counts.meta}")
        print(f"rewritten\t{counts.rewritten}")
        print(f"seconds\t{time.monotonic() - started:.1f}")
        sys.stdout.flush()

    return run_with_context(args, action)
