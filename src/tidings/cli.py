"""The ``tidings`` command: ``serve``, ``admin …`` and ``bench …``.

Each subcommand lives in its own module exposing ``configure(parser)`` and
``run(args) -> int``; this file only wires them up. Those modules keep their
heavy imports inside ``run`` so that building the parser stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# (command words, module, one-line help)
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("serve",), "tidings.serve", "run the server"),
    (("admin", "create-user"), "tidings.admin.create_user", "create an account"),
    (("admin", "reset-password"), "tidings.admin.reset_password", "set a user's password"),
    (("admin", "users"), "tidings.admin.users", "list users"),
    (("admin", "groups"), "tidings.admin.groups", "list groups"),
    (("admin", "stats"), "tidings.admin.stats", "count users, devices, groups"),
    (("admin", "backup"), "tidings.admin.backup", "copy a running SQLite store to a file"),
    (("admin", "reindex"), "tidings.admin.reindex", "rebuild the search index from what is stored"),
    (("bench", "timeline"), "tidings.bench.timeline", "benchmark the timeline store"),
    (("bench", "transport"), "tidings.bench.transport", "benchmark the bare WebSocket stacks"),
    (("bench", "fanout"), "tidings.bench.fanout", "benchmark group sends by size and mode"),
    (("bench", "load"), "tidings.bench.load", "load a server with many clients, verify delivery"),
    (("bench", "search"), "tidings.bench.search", "search latency and the index's cost"),
    (
        ("bench", "cluster"),
        "tidings.bench.cluster",
        "push latency on the same node vs across nodes",
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidings", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for words, module, help_text in COMMANDS:
        parent = commands
        for word in words[:-1]:
            if word not in groups:
                group_parser = commands.add_parser(word, help=f"{word} commands")
                groups[word] = group_parser.add_subparsers(
                    dest=f"{word}_command", required=True, metavar="COMMAND"
                )
            parent = groups[word]
        sub = parent.add_parser(words[-1], help=help_text, description=help_text)
        sub.set_defaults(module=module)
        importlib.import_module(module).configure(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = importlib.import_module(args.module).run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
