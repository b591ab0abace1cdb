"""The web client end to end: real headless Chromium, a real ``tidings serve``.

Each scenario leaves a screenshot of every page in test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import expect
from web_harness import Server
from web_ui import ChatPage

Person = Callable[..., ChatPage]


def test_two_people_chat_both_ways_in_real_time(person: Person) -> None:
    alice = person("alice").register()
    bob = person("bob").register()

    alice.start_direct("bob")
    alice.send("你好 Bob 👋")
    alice.expect_message("你好 Bob 👋", status="sent")

    # Bob's list shows it live, with a badge; opening it reads it.
    expect(bob.unread("alice")).to_have_text("1")
    expect(bob.conversation("alice").get_by_test_id("preview")).to_have_text("你好 Bob 👋")
    bob.open("alice")
    bob.expect_message("你好 Bob 👋")
    expect(bob.unread("alice")).to_have_count(0)

    # Typing shows on the other side; Shift+Enter makes a new line, Enter sends.
    bob.page.get_by_test_id("composer").press_sequentially("hi")
    expect(alice.page.get_by_test_id("typing")).to_have_text("bob is typing…")
    bob.page.get_by_test_id("composer").fill("")
    bob.send("Hi Alice!\n第二行 🎉")
    alice.expect_message("Hi Alice!\n第二行 🎉")
    expect(alice.page.get_by_test_id("typing")).to_have_text("")

    # Edit and recall one's own message: the other side follows.
    mine = alice.expect_message("你好 Bob 👋")
    mine.hover()
    mine.get_by_test_id("edit").click()
    alice.page.get_by_test_id("edit-box").fill("你好 Bob 👋 (edited)")
    alice.page.get_by_test_id("edit-save").click()
    bob.expect_message("你好 Bob 👋 (edited)")
    alice.send("oops, wrong chat")
    bob.expect_message("oops, wrong chat")
    wrong = alice.expect_message("oops, wrong chat", status="sent")
    wrong.hover()
    wrong.get_by_test_id("recall").click()
    expect(bob.message("message recalled")).to_have_count(1)
    expect(bob.message("oops, wrong chat")).to_have_count(0)

    assert alice.texts() == bob.texts()
    assert alice.texts() == ["你好 Bob 👋 (edited)", "Hi Alice!\n第二行 🎉", "message recalled"]


def test_message_sent_while_logged_out_is_there_after_login(person: Person) -> None:
    alice = person("alice").register()
    alice.logout()
    bob = person("bob").register()
    bob.start_direct("alice")
    bob.send("are you there? 在吗？")
    bob.expect_message("are you there? 在吗？", status="sent")

    alice.login()
    expect(alice.unread("bob")).to_have_text("1")
    alice.open("bob")
    alice.expect_message("are you there? 在吗？")
    expect(alice.unread("bob")).to_have_count(0)


def test_group_of_three(person: Person) -> None:
    alice = person("alice").register()
    bob = person("bob").register()
    carol = person("carol", phone=True).register()

    conversation = alice.create_group("周末 hiking ⛰️", ["bob"], open_group=True)
    gid = conversation.removeprefix("group:")
    alice.send("Saturday 9:00?")
    expect(bob.unread("周末 hiking ⛰️")).to_have_text("1")

    # Carol, on a phone, joins the open group by its id.
    carol.join_group(gid, "周末 hiking ⛰️")
    alice.send("welcome carol")
    carol.expect_message("welcome carol")
    # A member reads from the moment they joined.
    expect(carol.message("Saturday 9:00?")).to_have_count(0)

    bob.open("周末 hiking ⛰️")
    bob.send("👍 count me in")
    carol.send("me too 我也去")
    for someone in (alice, bob, carol):
        someone.expect_message("👍 count me in")
        someone.expect_message("me too 我也去")

    # Members and roles.
    alice.page.get_by_test_id("members-toggle").click()
    panel = alice.page.get_by_test_id("group-panel")
    expect(panel.get_by_test_id("member")).to_have_count(3)
    expect(panel.locator("[data-username=alice]").get_by_test_id("role")).to_have_text("owner")
    expect(panel.locator("[data-username=carol]").get_by_test_id("role")).to_have_text("member")
    # The wide and the narrow layout, mid-conversation (the README shows the first).
    alice.page.screenshot(path=str(_artifact("chat-wide.png")))
    carol.page.screenshot(path=str(_artifact("chat-phone.png")))
    bob_row = panel.locator("[data-username=bob]")
    bob_row.get_by_role("button", name="Make admin").click()
    expect(bob_row.get_by_test_id("role")).to_have_text("admin")
    expect(bob.page.get_by_test_id("system").filter(has_text="made you an admin")).to_have_count(1)

    # Carol leaves: the others see it, her list no longer has the group.
    carol.page.get_by_test_id("members-toggle").click()
    carol.page.get_by_test_id("leave-group").click()
    expect(carol.conversation("周末 hiking ⛰️")).to_have_count(0)
    expect(bob.page.get_by_test_id("system").filter(has_text="carol left")).to_have_count(1)
    expect(panel.get_by_test_id("member")).to_have_count(2)


def test_reload_keeps_history_and_unread_counts_on_every_tab(person: Person) -> None:
    alice = person("alice").register()
    bob = person("bob").register()
    bob.start_direct("alice")
    for n in range(1, 4):
        bob.send(f"message {n} 🚀")
    expect(alice.unread("bob")).to_have_text("3")

    alice.reload()
    expect(alice.unread("bob")).to_have_text("3")

    # A second tab of the same browser is the same device and session.
    second = person("alice", context=alice.page.context)
    second.goto()
    expect(second.unread("bob")).to_have_text("3")

    # Reading in one tab clears the badge in the other (inbox `read` events).
    alice.open("bob")
    for n in range(1, 4):
        alice.expect_message(f"message {n} 🚀")
    expect(second.unread("bob")).to_have_count(0)

    bob.send("one more")
    expect(second.conversation("bob").get_by_test_id("preview")).to_have_text("one more")
    expect(alice.unread("bob")).to_have_count(0)  # open and visible: read at once
    expect(second.unread("bob")).to_have_count(0)

    # What one tab sends shows in the other as its own message.
    second.open("bob")
    alice.send("from the first tab")
    second.expect_message("from the first tab", status="sent")
    bob.expect_message("from the first tab")

    alice.reload()  # the open conversation is in the address: it reopens
    expect(alice.page.get_by_test_id("chat-title")).to_have_text("bob")
    expected = ["message 1 🚀", "message 2 🚀", "message 3 🚀", "one more", "from the first tab"]
    assert alice.texts() == expected
    assert second.texts() == expected


def test_long_history_pages_backward(person: Person, server: Server) -> None:
    total = 230
    alice_token = server.account("alice")
    server.account("bob")
    for n in range(1, total + 1):
        body = {"text": f"line {n}", "client_msg_id": f"seed-{n}"}
        server.api("POST", "/conversations/dm:alice:bob/messages", body, token=alice_token)

    bob = person("bob").login()
    expect(bob.unread("alice")).to_have_text(str(total))
    bob.open("alice")
    bob.expect_message(f"line {total}")
    assert bob.messages().count() < total  # only the newest pages at first
    scroller = bob.page.get_by_test_id("messages")
    for _ in range(20):
        if bob.page.get_by_text("Start of the conversation").count():
            break
        scroller.evaluate("el => { el.scrollTop = 0 }")
        bob.page.wait_for_timeout(150)
    expect(bob.page.get_by_text("Start of the conversation")).to_be_visible()
    assert bob.texts() == [f"line {n}" for n in range(1, total + 1)]


def test_server_restart_mid_chat_loses_and_duplicates_nothing(
    person: Person, server: Server
) -> None:
    alice = person("alice").register()
    bob = person("bob").register()
    alice.start_direct("bob")
    alice.send("before the restart")
    bob.open("alice")
    bob.expect_message("before the restart")

    server.stop()
    expect(alice.page.get_by_test_id("banner")).to_be_visible()
    expect(bob.page.get_by_test_id("banner")).to_be_visible()
    # Written while the server is down: pending, then sent once it is back.
    alice.send("while it was down")
    alice.expect_message("while it was down", status="pending")

    server.start()
    alice.expect_connected()
    bob.expect_connected()
    alice.expect_message("while it was down", status="sent")
    bob.expect_message("while it was down")
    bob.send("after the restart")
    alice.expect_message("after the restart")

    expected = ["before the restart", "while it was down", "after the restart"]
    assert alice.texts() == expected
    assert bob.texts() == expected
    # A reload shows the same history: nothing was stored twice.
    bob.reload()
    bob.expect_message("after the restart")
    assert bob.texts() == expected


def test_refused_message_fails_and_retry_sends_it_once(person: Person, server: Server) -> None:
    bob_token = server.account("bob")
    alice = person("alice").register()
    server.api("PUT", "/blocks/alice", token=bob_token)
    alice.start_direct("bob")
    alice.send("let me in")
    failed = alice.expect_message("let me in", status="failed")
    expect(failed.get_by_test_id("failed")).to_contain_text("Not sent")

    server.api("DELETE", "/blocks/alice", token=bob_token)
    failed.get_by_test_id("retry").click()
    alice.expect_message("let me in", status="sent")
    alice.send("and again")
    alice.expect_message("and again", status="sent")

    bob = person("bob").login()
    bob.open("alice")
    bob.expect_message("and again")
    assert bob.texts() == ["let me in", "and again"]


def _artifact(name: str) -> object:
    from web_harness import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
