"""``tidings admin backup FILE``: a consistent copy of the SQLite store, taken with
SQLite's online backup API, safe while the server is writing."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from .. import config

# Pages copied per backup step: small steps let the server's writer in between.
PAGES_PER_STEP = 1024


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="the file to write (must not exist)")
    config.add_arguments(parser)


def backup(source: str, target: str) -> None:
    """Copy the database at ``source`` to a new file ``target``, consistently."""
    if Path(target).exists():
        raise FileExistsError(f"{target} exists; pick a new file")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=PAGES_PER_STEP)
    finally:
        dst.close()
        src.close()


def run(args: argparse.Namespace) -> int:
    settings = config.load_settings(args)
    url = settings.db_url
    if not url.startswith("sqlite://"):
        print("tidings admin backup: only the SQLite store; back PostgreSQL up with pg_dump")
        return 1
    path = url.removeprefix("sqlite://").removeprefix("/")
    if not Path(path).exists():
        print(f"tidings admin backup: no database at {path}")
        return 1
    try:
        backup(path, args.target)
    except (FileExistsError, sqlite3.Error) as exc:
        print(f"tidings admin backup: {exc}")
        return 1
    print(f"backed up {path} to {args.target}")
    return 0
