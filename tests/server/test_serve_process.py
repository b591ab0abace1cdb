"""``tidings serve`` and ``tidings admin`` as an operator runs them: real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from server_harness import PASSWORD

from tidings.client import Client

# Low Argon2 costs through the environment, as an operator would set them.
ENV = {
    **os.environ,
    "TIDINGS_PASSWORD_TIME_COST": "1",
    "TIDINGS_PASSWORD_MEMORY_KIB": "1024",
    "TIDINGS_SQLITE_SYNCHRONOUS": "NORMAL",
}
TIDINGS = [sys.executable, "-m", "tidings.cli"]


@pytest.fixture
async def serving(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    process = await asyncio.create_subprocess_exec(
        *TIDINGS,
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        env=ENV,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    assert line.startswith("tidings: serving on http://127.0.0.1:"), line
    url = line.split()[3].rstrip("/")
    try:
        yield process, url
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def admin(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *TIDINGS, "admin", *args, env=ENV, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, out
    return out.decode()


async def test_serve_starts_serves_and_stops_cleanly_on_sigterm(
    serving: tuple[asyncio.subprocess.Process, str],
) -> None:
    process, url = serving
    async with Client(url) as alice:
        await alice.register("alice", PASSWORD)
        await alice.login("alice", PASSWORD)
        live = await alice.live(reconnect=False).start()
        ack = await live.send(alice.dm("alice"), "kept across restarts")
        assert (await live.next(timeout=5))["message"]["id"] == ack["id"]
        ws = await alice.http.ws_connect(alice.ws_url(), params={"token": alice.token or ""})
        assert orjson.loads((await ws.receive(timeout=5)).data)["op"] == "ready"

        process.send_signal(signal.SIGTERM)
        closed = await ws.receive(timeout=10)
        assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1001
        await ws.close()
        await live.close()
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert "tidings: stopped" in out.decode()
    assert b"Traceback" not in err


async def test_admin_commands_work_beside_a_running_server(
    serving: tuple[asyncio.subprocess.Process, str], tmp_path: Path
) -> None:
    _, url = serving
    data = ["--data-dir", str(tmp_path / "data")]
    assert "created user carol" in await admin(
        "create-user", "carol", "--password", PASSWORD, *data
    )
    async with Client(url) as carol:
        await carol.login("carol", PASSWORD)  # the running server sees the new user
        await carol.create_group("Book club", id="books")
        await carol.request("POST", "/conversations/dm:carol:carol/messages", {"text": "note"})
    assert (await admin("users", *data)).split("\t")[0] == "carol"
    assert (await admin("groups", *data)).startswith("books\tclosed\t1\tcarol\tBook club")
    stats = await admin("stats", *data)
    assert "users\t1" in stats and "groups\t1" in stats and "devices\t1" in stats
    # The server indexed what it stored: a rebuild beside it finds nothing to change.
    assert "rewritten\t0" in await admin("reindex", *data)
    await admin("reset-password", "carol", "--password", "a new password", *data)
    async with Client(url) as carol:
        await carol.login("carol", "a new password")

    backup = tmp_path / "backup.db"
    assert "backed up" in await admin("backup", str(backup), *data)
    copy = sqlite3.connect(backup)
    try:
        (check,) = copy.execute("PRAGMA integrity_check").fetchone()
        (users,) = copy.execute("SELECT count(*) FROM meta WHERE id LIKE 'user:%'").fetchone()
    finally:
        copy.close()
    assert check == "ok" and users == 1


def test_settings_come_from_flags_then_environment() -> None:
    from tidings.cli import build_parser
    from tidings.config import load_settings

    args = build_parser().parse_args(["serve", "--max-frame-bytes", "2048"])
    env = {"TIDINGS_DATA": "/srv/tidings", "TIDINGS_MAX_FRAME_BYTES": "9", "TIDINGS_HEARTBEAT": "5"}
    settings = load_settings(args, env)
    assert settings.max_frame_bytes == 2048 and settings.heartbeat == 5.0
    assert settings.db_url == "sqlite:////srv/tidings/tidings.db"
