"""Fixtures of the browser tests: the built client, a server per test, and
headless Chromium with one browser context per person."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web_harness import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    Server,
    build_web,
    free_port,
    web_sources_newer_than_dist,
)
from web_ui import ChatPage

from required import cannot_run


@pytest.fixture(scope="session")
def web_dist() -> Path:
    if web_sources_newer_than_dist():
        try:
            build_web()
        except (RuntimeError, OSError) as error:
            cannot_run(f"web/dist cannot be built: {error}")
    from web_harness import DIST

    return DIST


@pytest.fixture(scope="session")
def browser(web_dist: Path) -> Iterator[Any]:
    if not CHROMIUM.exists():
        cannot_run(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        cannot_run("playwright is not installed (pip install -e '.[dev]')")
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def server(tmp_path: Path, web_dist: Path) -> Iterator[Server]:
    running = Server(tmp_path / "data", free_port())
    running.start()
    yield running
    running.stop()


WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def person(
    browser: Any, server: Server, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ChatPage]]:
    """``person(name, phone=False)``: a fresh browser context (its own storage)
    with one page on the client. Every request it makes must go to the server."""
    contexts: list[Any] = []
    pages: list[ChatPage] = []
    foreign: list[str] = []

    def make(name: str, phone: bool = False, context: Any = None) -> ChatPage:
        if context is None:
            context = browser.new_context(
                viewport=PHONE if phone else WIDE,
                is_mobile=phone,
                has_touch=phone,
                device_scale_factor=1,
                locale="zh-CN" if phone else "en-US",
            )
            contexts.append(context)

            def watch(req: Any) -> None:
                url: str = req.url
                if not (
                    url.startswith(server.url)
                    or url.startswith("ws://127.0.0.1:" + str(server.port))
                    or url.startswith("data:")
                    or url.startswith("about:")
                ):
                    foreign.append(url)

            context.on("request", watch)
        page = ChatPage(context.new_page(), server.url, name)
        pages.append(page)
        return page

    yield make
    ARTIFACTS.mkdir(exist_ok=True)
    test_name = request.node.name
    for index, page in enumerate(pages):
        if not page.page.is_closed():
            page.page.screenshot(path=str(ARTIFACTS / f"{test_name}-{index}-{page.name}.png"))
    for context in contexts:
        context.close()
    assert not foreign, f"requests to other hosts: {foreign}"
