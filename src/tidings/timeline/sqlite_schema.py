"""The SQLite schema: numbered migrations, applied in order when a store opens."""

from __future__ import annotations

import logging
import sqlite3

from .sqlite_search import FEWER_SEGMENTS as SEARCH_FEWER_SEGMENTS
from .sqlite_search import MIGRATION as SEARCH_MIGRATION
from .sqlite_search import STAGED_IN_ORDER as SEARCH_STAGED_IN_ORDER
from .sqlite_search import TUNING as SEARCH_TUNING

log = logging.getLogger("tidings.timeline.sqlite")

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE timelines (
            id TEXT PRIMARY KEY,
            last_seq INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE bodies (
            id INTEGER PRIMARY KEY,
            refs INTEGER NOT NULL,
            data BLOB NOT NULL
        )""",
        """CREATE TABLE entries (
            timeline_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            body_id INTEGER NOT NULL,
            created_at REAL NOT NULL,
            client_id TEXT,
            ref_timeline TEXT,
            ref_seq INTEGER,
            PRIMARY KEY (timeline_id, seq)
        ) WITHOUT ROWID""",
        """CREATE UNIQUE INDEX entries_client_id ON entries (timeline_id, client_id)
            WHERE client_id IS NOT NULL""",
        """CREATE TABLE meta (
            id TEXT PRIMARY KEY,
            fields TEXT NOT NULL
        ) WITHOUT ROWID""",
    ],
    [
        """CREATE TABLE recent (
            timeline_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            body_id INTEGER NOT NULL,
            created_at REAL NOT NULL,
            client_id TEXT,
            ref_timeline TEXT,
            ref_seq INTEGER,
            PRIMARY KEY (timeline_id, seq)
        ) WITHOUT ROWID""",
        """CREATE UNIQUE INDEX recent_client_id ON recent (timeline_id, client_id)
            WHERE client_id IS NOT NULL""",
    ],
]

# 3: the search index, kept in sqlite_search.py.
MIGRATIONS.append(SEARCH_MIGRATION)
# 4: how FTS5 merges its segments (sqlite_search.py).
MIGRATIONS.append(SEARCH_TUNING)
# 5: the time of each timeline's last entry, so that a later seq is never
# stamped earlier (see sqlite._advance_heads).
MIGRATIONS.append(["ALTER TABLE timelines ADD COLUMN last_at REAL NOT NULL DEFAULT 0"])
# 6: FTS5 merges 8 segments at a time, not 16 (sqlite_search.py).
MIGRATIONS.append(SEARCH_FEWER_SEGMENTS)
# 7: staged search documents in staging order, not keyed by id (sqlite_search.py).
MIGRATIONS.append(SEARCH_STAGED_IN_ORDER)


def migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    for version, statements in enumerate(MIGRATIONS, start=1):
        if version in done:
            continue
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
        log.info("applied SQLite migration %d", version)
