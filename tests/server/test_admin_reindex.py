"""``tidings admin reindex`` as an operator runs it (a real process) on a
SQLite database whose history was written while nothing was indexed."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from server_harness import PASSWORD

from tidings.im import Context, IMSettings, accounts, groups, messaging, names, search
from tidings.im.search import SEARCH
from tidings.timeline import open_store

ENV = {**os.environ, "TIDINGS_SQLITE_SYNCHRONOUS": "NORMAL"}
FAST_HASH = {"password_time_cost": 1, "password_memory_kib": 1024}


async def admin(*args: str) -> dict[str, str]:
    """Run ``tidings admin …``; its final ``name<TAB>value`` lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tidings.cli", "admin", *args, env=ENV, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out
    lines = [line.split("\t") for line in out.decode().splitlines() if "\t" in line]
    return {name: value for name, value in lines}


async def texts(ctx: Context, user: str, query: str) -> list[str]:
    page = await search.messages(ctx, user, query)
    return ["".join(piece["text"] for piece in hit["snippet"]) for hit in page["hits"]]


async def test_reindex_makes_history_written_without_an_index_searchable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'tidings.db'}"
    dm = names.dm("alice", "bob")
    # A database of a Tidings that indexed nothing (before search existed).
    store = await open_store(url, purge_interval=None)
    old = Context(store, IMSettings(**FAST_HASH))
    await accounts.register(old, "alice", PASSWORD, display_name="爱丽丝")
    await accounts.register(old, "bob", PASSWORD, signature="做IM开发")
    await groups.create(old, "alice", "梧桐读书会", gid="books", members=["bob"])
    await messaging.send(old, "alice", "group:books", text="梧桐树下的群聊")
    await messaging.send(old, "bob", dm, text="Hello World from Bob")
    recalled = await messaging.send(old, "bob", dm, text="秘密 to be recalled")
    await messaging.recall(old, "bob", dm, recalled.seq)
    await store.close()

    counts = await admin("reindex", "--data-dir", str(data))
    assert counts["conversations"] == "2" and counts["messages"] == "2"
    assert counts["records"] == "3"  # two users, one group

    store = await open_store(url, purge_interval=None, search=SEARCH)
    try:
        ctx = Context(store, IMSettings(**FAST_HASH))
        assert await texts(ctx, "bob", "梧桐") == ["梧桐树下的群聊"]
        assert await texts(ctx, "alice", "hello wor") == ["Hello World from Bob"]
        assert await texts(ctx, "bob", "秘密") == []
        assert [u["username"] for u in await search.users(ctx, "丽")] == ["alice"]
        assert [u["username"] for u in await search.users(ctx, "im开发")] == ["bob"]
        found: list[dict[str, Any]] = await search.groups(ctx, "bob", "读书")
        assert [g["id"] for g in found] == ["books"]
    finally:
        await store.close()

    again = await admin("reindex", "--data-dir", str(data))
    assert again["messages"] == "2" and again["rewritten"] == "0"
