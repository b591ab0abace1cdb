"""The web client as a person uses it: one page, driven through what is on
screen (roles, labels and ``data-testid`` hooks), with Playwright's waiting
assertions."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, Page, expect
from web_harness import PASSWORD

# Real-time means well under this (ms); waits this long before failing.
TIMEOUT = 10_000


class ChatPage:
    def __init__(self, page: Page, base_url: str, name: str) -> None:
        self.page = page
        self.base_url = base_url
        self.name = name
        self.console_errors: list[str] = []
        page.on("console", self._console)
        page.set_default_timeout(TIMEOUT)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    # -- session ----------------------------------------------------------------

    def goto(self) -> None:
        self.page.goto(self.base_url + "/")

    def register(self) -> ChatPage:
        self.goto()
        self.page.get_by_test_id("mode-register").click()
        self._credentials()
        return self

    def login(self) -> ChatPage:
        self.goto()
        self._credentials()
        return self

    def _credentials(self) -> None:
        self.page.get_by_test_id("username").fill(self.name)
        self.page.get_by_test_id("password").fill(PASSWORD)
        self.page.get_by_test_id("submit").click()
        expect(self.page.get_by_test_id("me")).to_have_text(self.name)
        self.expect_connected()

    def logout(self) -> None:
        self.page.get_by_test_id("logout").click()
        expect(self.page.get_by_test_id("login-form")).to_be_visible()

    def reload(self) -> None:
        self.page.reload()
        expect(self.page.get_by_test_id("me")).to_have_text(self.name)
        self.expect_connected()

    def expect_connected(self) -> None:
        expect(self.page.get_by_test_id("banner")).to_have_count(0, timeout=20_000)

    # -- conversations ------------------------------------------------------------

    def conversation(self, title: str) -> Locator:
        return self.page.get_by_test_id("conversation").filter(
            has=self.page.get_by_test_id("conversation-title").get_by_text(title, exact=True)
        )

    def start_direct(self, username: str) -> None:
        self.page.get_by_test_id("start-toggle").click()
        self.page.get_by_test_id("tab-direct").click()
        self.page.get_by_test_id("dm-username").fill(username)
        self.page.get_by_test_id("dm-start").click()
        expect(self.page.get_by_test_id("chat-title")).to_have_text(username)

    def create_group(self, name: str, members: list[str], open_group: bool = False) -> str:
        self.page.get_by_test_id("start-toggle").click()
        self.page.get_by_test_id("tab-group").click()
        self.page.get_by_test_id("group-name").fill(name)
        self.page.get_by_test_id("group-members").fill(", ".join(members))
        if open_group:
            self.page.get_by_test_id("group-open").check()
        self.page.get_by_test_id("group-create").click()
        expect(self.page.get_by_test_id("chat-title")).to_have_text(name)
        conversation = self.page.get_by_test_id("chat").get_attribute("data-conversation")
        assert conversation and conversation.startswith("group:")
        return conversation

    def join_group(self, gid: str, name: str) -> None:
        self.page.get_by_test_id("start-toggle").click()
        self.page.get_by_test_id("tab-join").click()
        self.page.get_by_test_id("join-id").fill(gid)
        self.page.get_by_test_id("join-submit").click()
        expect(self.page.get_by_test_id("chat-title")).to_have_text(name)

    def open(self, title: str) -> None:
        if self.page.get_by_test_id("back").is_visible():
            self.page.get_by_test_id("back").click()
        self.conversation(title).click()
        expect(self.page.get_by_test_id("chat-title")).to_have_text(title)

    def unread(self, title: str) -> Locator:
        return self.conversation(title).get_by_test_id("unread")

    # -- messages -------------------------------------------------------------------

    def send(self, text: str) -> None:
        composer = self.page.get_by_test_id("composer")
        lines = text.split("\n")
        composer.fill(lines[0])
        for line in lines[1:]:
            composer.press("Shift+Enter")
            composer.press_sequentially(line)
        composer.press("Enter")
        expect(composer).to_have_value("")

    def messages(self) -> Locator:
        return self.page.get_by_test_id("message")

    def message(self, text: str) -> Locator:
        return self.messages().filter(
            has=self.page.get_by_test_id("text").get_by_text(text, exact=True)
        )

    def expect_message(self, text: str, status: str | None = None) -> Locator:
        found = self.message(text)
        expect(found).to_have_count(1)
        if status:
            expect(found).to_have_attribute("data-status", status)
        return found

    def texts(self) -> list[str]:
        return [t.strip() for t in self.page.get_by_test_id("text").all_inner_texts()]

    # -- search ---------------------------------------------------------------------

    def search(self, query: str) -> Locator:
        """Type ``query`` into the search box (🔍), opening it if need be; the
        message hits (they appear once the typing pauses and the server replies)."""
        box = self.page.get_by_test_id("search-input")
        if not box.is_visible():
            self.page.get_by_test_id("search-toggle").click()
        box.fill(query)
        return self.page.get_by_test_id("search-message")
