"""IM search (issue 7) on every backend: users, groups and messages, scoped to
what the searching user may read."""

from __future__ import annotations

from typing import Any

import pytest
from search_harness import Clock, Users

from tidings.errors import Forbidden, InvalidInput
from tidings.im import Context, groups, messaging, names, search

HOSTILE = ['"', "*", "NEAR(a b)", "%", "_", "'; DROP TABLE meta; --", "((", "", " ", "x" * 5000]


async def hits(ctx: Context, user: str, query: str, **options: Any) -> list[str]:
    page = await search.messages(ctx, user, query, **options)
    return ["".join(piece["text"] for piece in hit["snippet"]) for hit in page["hits"]]


async def send(ctx: Context, sender: str, conversation: str, text: str) -> int:
    return (await messaging.send(ctx, sender, conversation, text=text)).seq


async def test_users_by_name_display_name_and_signature(ctx: Context, users: Users) -> None:
    await users("alice", display_name="爱丽丝", signature="梧桐树下")
    await users("malice", display_name="Mal")
    await users("bob", signature="做IM开发")
    found = [u["username"] for u in await search.users(ctx, "alice")]
    assert found == ["alice", "malice"]  # the prefix match first
    assert [u["username"] for u in await search.users(ctx, "lic")] == ["alice", "malice"]
    assert [u["username"] for u in await search.users(ctx, "丽")] == ["alice"]
    assert [u["username"] for u in await search.users(ctx, "梧桐")] == ["alice"]
    assert [u["username"] for u in await search.users(ctx, "im开发")] == ["bob"]
    (alice,) = await search.users(ctx, "爱丽丝")
    assert alice == {"username": "alice", "display_name": "爱丽丝", "signature": "梧桐树下"}


async def test_open_groups_for_anyone_closed_groups_for_members(ctx: Context, users: Users) -> None:
    await users("alice", "bob", "carol")
    await groups.create(ctx, "alice", "梧桐读书会", type="open", gid="books")
    await groups.create(ctx, "alice", "梧桐秘密小组", type="closed", gid="secret", members=["bob"])
    assert [g["id"] for g in await search.groups(ctx, "carol", "梧桐")] == ["books"]
    assert [g["id"] for g in await search.groups(ctx, "bob", "梧桐")] == ["books", "secret"]
    assert [g["id"] for g in await search.groups(ctx, "carol", "秘密")] == []
    assert [g["id"] for g in await search.groups(ctx, "carol", "open")] == ["books"]
    assert [g["member"] for g in await search.groups(ctx, "bob", "梧桐")] == [False, True]


@pytest.fixture
async def chat(ctx: Context, users: Users) -> Context:
    await users("alice", "bob", "carol")
    await groups.create(ctx, "alice", "dev", gid="dev", members=["bob"])
    await send(ctx, "alice", "group:dev", "我们用Timeline模型做IM开发")
    await send(ctx, "bob", "group:dev", "梧桐树下的群聊")
    await send(ctx, "alice", "group:dev", "東京タワーに行きました")
    await send(ctx, "bob", names.dm("alice", "bob"), "Hello World from Bob")
    await send(ctx, "carol", names.dm("bob", "carol"), "carol's secret: 梧桐")
    return ctx


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("梧桐", ["梧桐树下的群聊"]),
        ("群", ["梧桐树下的群聊"]),
        ("IM开发", ["我们用Timeline模型做IM开发"]),
        ("Timeline模型", ["我们用Timeline模型做IM开发"]),
        ("timeline", ["我们用Timeline模型做IM开发"]),
        ("東京", ["東京タワーに行きました"]),
        ("HELLO world", ["Hello World from Bob"]),
        ("secret", []),  # a conversation alice is not in
    ],
)
async def test_messages(chat: Context, query: str, expected: list[str]) -> None:
    assert await hits(chat, "alice", query) == expected


async def test_hits_name_the_conversation_and_seq(chat: Context) -> None:
    page = await search.messages(chat, "alice", "梧桐")
    (hit,) = page["hits"]
    assert (hit["conversation"], hit["seq"], hit["from"]) == ("group:dev", 4, "bob")
    assert [p["text"] for p in hit["snippet"] if p["match"]] == ["梧桐"]
    assert page["cursor"] is None


async def test_a_group_one_is_not_in_is_never_searched(chat: Context) -> None:
    assert await hits(chat, "carol", "梧桐") == ["carol's secret: 梧桐"]
    assert await hits(chat, "carol", "IM开发") == []
    with pytest.raises(Forbidden):
        await search.messages(chat, "carol", "梧桐", conversation="group:dev")


async def test_a_member_who_left_finds_nothing_after_leaving(chat: Context) -> None:
    await groups.leave(chat, "bob", "dev")
    await send(chat, "alice", "group:dev", "离开以后的梧桐")
    assert await hits(chat, "bob", "离开") == []
    assert await hits(chat, "bob", "梧桐", conversation="group:dev") == ["梧桐树下的群聊"]
    assert await hits(chat, "alice", "梧桐") == ["离开以后的梧桐", "梧桐树下的群聊"]


async def test_a_late_joiner_finds_nothing_from_before(chat: Context) -> None:
    await groups.add_members(chat, "alice", "dev", ["carol"])
    await send(chat, "alice", "group:dev", "欢迎 carol, 这里讨论IM开发")
    assert await hits(chat, "carol", "IM开发") == ["欢迎 carol, 这里讨论IM开发"]


async def test_recall_and_edit(chat: Context, clock: Clock) -> None:
    seq = await send(chat, "alice", "group:dev", "打错了的字")
    await messaging.recall(chat, "alice", "group:dev", seq)
    assert await hits(chat, "alice", "打错") == []
    edited = await send(chat, "alice", "group:dev", "旧的说法")
    await messaging.edit(chat, "alice", "group:dev", edited, "新的说法")
    assert await hits(chat, "bob", "旧的") == []
    assert await hits(chat, "bob", "新的") == ["新的说法"]  # the edit event is not a hit


async def test_filters(chat: Context, clock: Clock) -> None:
    clock.advance(60)
    await send(chat, "bob", "group:dev", "later 梧桐")
    assert await hits(chat, "alice", "梧桐", sender="alice") == []
    assert await hits(chat, "alice", "梧桐", sender="bob") == ["later 梧桐", "梧桐树下的群聊"]
    assert await hits(chat, "alice", "梧桐", after=clock.now) == ["later 梧桐"]
    assert await hits(chat, "alice", "梧桐", before=clock.now) == ["梧桐树下的群聊"]
    dm = names.dm("alice", "bob")
    assert await hits(chat, "alice", "hello", conversation=dm) == ["Hello World from Bob"]
    assert await hits(chat, "alice", "梧桐", conversation=dm) == []


async def test_paging(chat: Context) -> None:
    for n in range(5):
        await send(chat, "alice", "group:dev", f"第{n}条 分页")
    seen: list[str] = []
    cursor = None
    while True:
        page = await search.messages(chat, "alice", "分页", limit=2, cursor=cursor)
        seen += ["".join(p["text"] for p in hit["snippet"]) for hit in page["hits"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == [f"第{n}条 分页" for n in range(4, -1, -1)]


@pytest.mark.parametrize("query", HOSTILE)
async def test_hostile_queries(chat: Context, query: str) -> None:
    await search.messages(chat, "alice", query)
    await search.users(chat, query)
    await search.groups(chat, "alice", query)


async def test_bad_arguments(chat: Context) -> None:
    with pytest.raises(InvalidInput):
        await search.messages(chat, "alice", "x", limit=1000)
    with pytest.raises(InvalidInput):
        await search.messages(chat, "alice", "x", order="oldest")
    with pytest.raises(InvalidInput):
        await search.messages(chat, "alice", "x", sender="NOT A NAME!")
    with pytest.raises(InvalidInput):
        await search.messages(chat, "alice", "x", cursor="garbage")
