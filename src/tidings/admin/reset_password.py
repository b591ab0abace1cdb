"""``tidings admin reset-password NAME``: set a new password and sign out every
device of the user (their open sockets close within a minute)."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from . import configure_store, run_with_context


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("username")
    parser.add_argument("--password", help="the new password (asked for when absent)")
    configure_store(parser)


def run(args: argparse.Namespace) -> int:
    password = args.password or getpass.getpass(f"new password for {args.username}: ")

    async def action(ctx: Any) -> None:
        from ..im import accounts

        signed_out = await accounts.set_password(ctx, args.username, password)
        print(f"password of {args.username} reset; {signed_out} device(s) signed out")

    return run_with_context(args, action)
