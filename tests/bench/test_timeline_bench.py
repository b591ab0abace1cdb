"""``tidings bench timeline`` runs end to end on tiny sizes and prints its figures.

Benchmarks are programs, not tests: nothing here checks a speed, only that the
command runs on each backend and reports every figure it promises.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3

import asyncpg
import pytest

from required import cannot_run
from tidings.cli import main

# Small enough to finish in about a second, large enough that every phase runs
# (seeded scan timelines, a fill, both probes, a growth in windows, the naive replay).
TINY = [
    *("--entries", "3000", "--small", "1000", "--inboxes", "100", "--fanout", "10"),
    *("--senders", "4", "--appenders", "4", "--appends", "3"),
    *("--probe-fanouts", "4", "--scans", "8"),
]
FIGURES = {
    "append_per_s",
    "fanout_entries_per_s",
    "naive_fanout_entries_per_s",
    "scan20_p50_ms",
    "scan20_p99_ms",
    "scale_ratio_append",
    "scale_ratio_scan",
}
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["bench", "timeline", "--json", *TINY, *args]) == 0
    figures: dict[str, object] = json.loads(capsys.readouterr().out)
    return figures


def assert_complete(figures: dict[str, object]) -> None:
    assert FIGURES <= figures.keys()
    for key in FIGURES:
        value = figures[key]
        assert isinstance(value, int | float) and value > 0, key
    stored = figures["stored_entries"]
    assert isinstance(stored, int) and stored >= 3000


def test_sqlite_prints_every_figure_as_one_json_object(
    capsys: pytest.CaptureFixture[str],
) -> None:
    figures = run_json(capsys, "--backend", "sqlite")
    assert_complete(figures)
    assert figures["engine"] == f"SQLite {sqlite3.sqlite_version}, synchronous=FULL"


def test_sqlite_table_names_the_comparison_with_the_naive_layout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "timeline", "--synchronous", "NORMAL", *TINY]) == 0
    out = capsys.readouterr().out
    assert "synchronous=NORMAL" in out
    assert "naive layout" in out
    assert "store / naive" in out


def test_postgres_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    dsn = os.environ.get("TIDINGS_TEST_PG", DEFAULT_PG_DSN)
    problem = asyncio.run(_unreachable(dsn))
    if problem:
        cannot_run(f"no PostgreSQL at {dsn} (set TIDINGS_TEST_PG): {problem}")
    assert_complete(run_json(capsys, "--backend", "postgres", "--dsn", dsn))


def test_sizes_that_leave_nothing_to_measure_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "timeline", *TINY, "--entries", "1500"]) == 2
    assert "--entries must be more than twice --small" in capsys.readouterr().err


async def _unreachable(dsn: str) -> str | None:
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return repr(exc)
    await conn.close()
    return None
