"""The search box (🔍) end to end: a Chinese query finds a message deep in a
direct chat, the hit opens the chat at it, and a group one is not in stays out."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable

from playwright.sync_api import expect
from web_harness import Server
from web_ui import ChatPage

Person = Callable[..., ChatPage]

# More than one history page (the client's PAGE is 50) is sent after the hit,
# so opening it has to load older pages.
NEWER = 60


def test_search_finds_chinese_text_and_opens_the_chat_at_it(person: Person, server: Server) -> None:
    server.account("alice")
    bob = server.account("bob")
    carol = server.account("carol")

    def send(token: str, conversation: str, text: str, cmid: str) -> None:
        body = {"text": text, "client_msg_id": cmid}
        server.api("POST", f"/conversations/{conversation}/messages", body, token=token)

    dm = "dm:alice:bob"
    send(bob, dm, "我们在梧桐树下见面", "hit")
    send(bob, dm, "See you under the plane tree at six", "english")
    for n in range(1, NEWER + 1):
        send(bob, dm, f"filler {n}", f"filler-{n}")
    # A closed group of carol and bob, with a matching message alice may not read.
    group = server.api("POST", "/groups", {"name": "carol & bob", "members": ["bob"]}, token=carol)
    send(carol, group["conversation"], "梧桐叶子黄了", "secret")

    def found(token: str, query: str) -> set[str]:
        reply = server.api(
            "GET", "/search/messages?" + urllib.parse.urlencode({"q": query}), token=token
        )
        return {hit["conversation"] for hit in reply["hits"]}

    # Bob may read both, so the group's message is indexed and findable.
    assert found(bob, "梧桐") == {dm, group["conversation"]}

    alice = person("alice").login()
    hits = alice.search("梧桐")
    expect(hits).to_have_count(1)
    hit = hits.first
    expect(hit.get_by_test_id("search-origin")).to_contain_text("bob · with bob")
    expect(hit).to_contain_text("我们在梧桐树下见面")
    expect(hit.locator("mark")).to_have_text(["梧桐"])
    expect(hits.filter(has_text="梧桐叶子")).to_have_count(0)

    hit.click()
    expect(alice.page.get_by_test_id("chat-title")).to_have_text("bob")
    target = alice.expect_message("我们在梧桐树下见面")
    expect(target).to_have_class(re.compile(r"\bfocused\b"))
    expect(target).to_be_in_viewport()
    expect(alice.message("See you under the plane tree at six")).to_be_visible()
    expect(alice.message(f"filler {NEWER}")).not_to_be_in_viewport()
    assert alice.texts() == [
        "我们在梧桐树下见面",
        "See you under the plane tree at six",
        *(f"filler {n}" for n in range(1, NEWER + 1)),
    ]
    assert not alice.console_errors
