"""``tidings admin create-user NAME``: create an account (password from --password
or asked for)."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from . import configure_store, run_with_context


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("username")
    parser.add_argument("--password", help="the password (asked for when absent)")
    parser.add_argument("--display-name", default="")
    configure_store(parser)


def run(args: argparse.Namespace) -> int:
    password = args.password or getpass.getpass(f"password for {args.username}: ")

    async def action(ctx: Any) -> None:
        from ..im import accounts

        profile = await accounts.register(
            ctx, args.username, password, display_name=args.display_name
        )
        print(f"created user {profile['username']}")

    return run_with_context(args, action)
