"""The public surface of ``tidings.timeline``: its exports and ``open_store`` URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from timeline_harness import StoreFactory

import tidings.timeline
from tidings.errors import InvalidInput, Unavailable
from tidings.timeline import open_store

EXPORTED = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "MAX_SCAN_LIMIT",
    "Append",
    "Backend",
    "Batch",
    "Direction",
    "Entry",
    "Hit",
    "Message",
    "Page",
    "ReindexCounts",
    "Scope",
    "SearchConfig",
    "SearchPage",
    "Store",
    "open_store",
]


def test_all_is_pinned() -> None:
    assert sorted(tidings.timeline.__all__) == sorted(EXPORTED)


def test_every_exported_name_exists() -> None:
    for name in tidings.timeline.__all__:
        assert hasattr(tidings.timeline, name), name


def test_documented_limits() -> None:
    assert tidings.timeline.DEFAULT_MAX_MESSAGE_BYTES == 64 * 1024
    assert tidings.timeline.MAX_SCAN_LIMIT == 1000


async def test_sqlite_url_with_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "abs.db"
    store = await open_store(f"sqlite:///{path}", purge_interval=None)
    try:
        assert (await store.append("t:1", {"n": 1})).seq == 1
    finally:
        await store.close()
    assert path.exists()


async def test_sqlite_url_with_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with await open_store("sqlite:///rel.db", purge_interval=None) as store:
        await store.append("t:1", {"n": 1})
    assert (tmp_path / "rel.db").exists()


async def test_sqlite_synchronous_option(tmp_path: Path) -> None:
    async with await open_store(
        f"sqlite:///{tmp_path / 'n.db'}", synchronous="NORMAL", purge_interval=None
    ) as store:
        assert (await store.append("t:1", {"n": 1})).seq == 1
    with pytest.raises(InvalidInput):
        await open_store(f"sqlite:///{tmp_path / 'x.db'}", synchronous="OFF")


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://", "sqlite:///", "file.db", ""])
async def test_unsupported_urls_raise_invalid_input(url: str) -> None:
    with pytest.raises(InvalidInput):
        await open_store(url)


async def test_async_with_on_an_opened_store_and_double_close(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'w.db'}", purge_interval=None)
    async with store as same:
        assert same is store
        await store.append("t:1", {"n": 1})
    await store.close()  # closing a closed store is harmless


async def test_a_closed_store_is_unavailable(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.append("t:1", {"n": 1})
    await store_factory.close(store)
    with pytest.raises(Unavailable):
        await store.append("t:1", {"n": 2})
    with pytest.raises(Unavailable):
        await store.scan("t:1")
