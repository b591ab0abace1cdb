"""The README's echo bot, run as written against a real server."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from server_harness import Harness

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_bot() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    [bot] = [block for block in blocks if "live.events()" in block]
    return bot.replace("asyncio.run(main())", "")


async def test_the_readme_echo_bot_echoes(server: Harness) -> None:
    source = readme_bot()
    assert len(source.strip().splitlines()) <= 13
    namespace: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    bot_account = server.client()
    await bot_account.register("echo", "echo-bot-password")
    bob = await server.user("bob")
    bot = asyncio.create_task(namespace["main"](server.url))
    try:
        bob_live = await server.live(bob)
        await bob_live.send(bob.dm("echo"), "marco")
        while True:
            event = await bob_live.next(timeout=5)
            if event["message"]["from"] == "echo":
                break
        assert event["message"]["text"] == "echo: marco"
    finally:
        bot.cancel()
        await asyncio.gather(bot, return_exceptions=True)
