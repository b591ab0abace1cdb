from __future__ import annotations

import asyncio
import random

import pytest
from im_harness import Clock, Users, device, drain, texts

from tidings.errors import Forbidden, InvalidInput
from tidings.im import Context, groups, messaging, names, sync


async def unread(ctx: Context, user: str) -> dict[str, int]:
    return {c["conversation"]: c["unread"] for c in await sync.conversations(ctx, user)}


async def test_each_device_keeps_its_own_cursor_on_the_server(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    laptop, phone = await device(ctx, "bob"), await device(ctx, "bob")
    await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="one")
    await drain(ctx, "bob", laptop)
    await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="two")
    assert texts((await sync.sync(ctx, "bob", laptop)).events) == ["two"]
    assert texts((await sync.sync(ctx, "bob", phone)).events) == ["one", "two"]


async def test_a_cursor_never_moves_back(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    phone = await device(ctx, "bob")
    for i in range(3):
        await messaging.send(ctx, "alice", names.dm("alice", "bob"), text=str(i))
    assert await sync.confirm(ctx, "bob", phone, 3) == 3
    assert await sync.confirm(ctx, "bob", phone, 1) == 3
    assert await sync.confirm(ctx, "bob", phone, 99) == 3  # not past the head


async def test_a_cursor_older_than_the_inbox_keeps_asks_for_a_reset(
    ctx: Context, users: Users, clock: Clock
) -> None:
    await users("alice", "bob")
    phone = await device(ctx, "bob")
    await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="old")
    clock.advance(ctx.settings.inbox_ttl + 1)
    await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="new")
    await ctx.store.purge_expired()
    result = await sync.sync(ctx, "bob", phone)
    assert result.reset and texts(result.events) == ["new"]
    # History is kept forever: the client re-fetches it after a reset.
    history, _ = await sync.history(ctx, "bob", names.dm("alice", "bob"))
    assert [m["text"] for m in history] == ["new", "old"]


async def test_history_pages_backward_and_visits_everything_once(
    ctx: Context, users: Users
) -> None:
    await users("alice", "bob")
    conversation = names.dm("alice", "bob")
    for i in range(45):
        await messaging.send(ctx, "alice", conversation, text=str(i))
    seen: list[int] = []
    before = None
    while True:
        page, more = await sync.history(ctx, "bob", conversation, before=before, limit=20)
        seen += [m["seq"] for m in page]
        if not more:
            break
        before = page[-1]["seq"]
    assert seen == list(range(45, 0, -1))


@pytest.mark.parametrize("limit", [0, 201, "10"])
async def test_bad_page_sizes_are_refused(ctx: Context, users: Users, limit: object) -> None:
    await users("alice", "bob")
    with pytest.raises(InvalidInput):
        await sync.history(ctx, "alice", names.dm("alice", "bob"), limit=limit)  # type: ignore[arg-type]


async def test_unread_counts_skip_own_messages_and_clear_on_read(
    ctx: Context, users: Users
) -> None:
    await users("alice", "bob")
    conversation = names.dm("alice", "bob")
    for text in ("a", "b", "c"):
        await messaging.send(ctx, "alice", conversation, text=text)
    await messaging.send(ctx, "bob", conversation, text="mine")
    assert await unread(ctx, "bob") == {conversation: 3}
    assert await unread(ctx, "alice") == {conversation: 1}
    await sync.mark_read(ctx, "bob", conversation, 2)
    assert await unread(ctx, "bob") == {conversation: 1}
    assert await sync.mark_read(ctx, "bob", conversation, 1) == 2  # forward only
    await sync.mark_read(ctx, "bob", conversation, 4)
    assert await unread(ctx, "bob") == {conversation: 0}


async def test_read_marks_from_two_nodes_at_once_only_move_forward(
    ctx: Context, users: Users
) -> None:
    """Two devices of one user, on two nodes, marking different points at once:
    the mark ends at the furthest, never at a later-written lesser one."""
    await users("alice", "bob")
    conversation = names.dm("alice", "bob")
    for n in range(12):
        await messaging.send(ctx, "alice", conversation, text=f"m{n}")
    other = Context(ctx.store, ctx.settings)
    marks = list(range(1, 13))
    random.Random(3).shuffle(marks)
    await asyncio.gather(
        *(sync.mark_read((ctx, other)[n % 2], "bob", conversation, s) for n, s in enumerate(marks))
    )
    assert await sync.mark_read(other, "bob", conversation, 1) == 12
    assert await unread(ctx, "bob") == {conversation: 0}


async def test_reading_on_one_device_reaches_the_others(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    laptop, phone = await device(ctx, "bob"), await device(ctx, "bob")
    ack = await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="hi")
    await drain(ctx, "bob", laptop)
    await sync.mark_read(ctx, "bob", ack.conversation, ack.seq)
    events = await drain(ctx, "bob", phone)
    assert events[-1] == {
        "inbox_seq": events[-1]["inbox_seq"],
        "type": "read",
        "conversation": ack.conversation,
        "seq": ack.seq,
    }
    assert await unread(ctx, "bob") == {ack.conversation: 0}


async def test_a_non_member_cannot_mark_a_group_read(ctx: Context, users: Users) -> None:
    await users("alice", "mallory")
    group = await groups.create(ctx, "alice", "team")
    with pytest.raises(Forbidden):
        await sync.mark_read(ctx, "mallory", group["conversation"], 1)


async def test_the_conversation_list_is_ordered_by_last_activity(
    ctx: Context, users: Users, clock: Clock
) -> None:
    await users("alice", "bob", "carol")
    await messaging.send(ctx, "bob", names.dm("alice", "bob"), text="first")
    clock.advance(10)
    group = await groups.create(ctx, "carol", "team", members=["alice"])
    clock.advance(10)
    await messaging.send(ctx, "carol", names.dm("alice", "carol"), text="latest")
    listed = await sync.conversations(ctx, "alice")
    assert [c["conversation"] for c in listed] == [
        "dm:alice:carol",
        group["conversation"],
        "dm:alice:bob",
    ]
    assert listed[0]["last_message"]["text"] == "latest"
    assert listed[0]["unread"] == 1


async def test_a_cursor_past_the_inbox_head_asks_for_a_reset(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    phone = await device(ctx, "bob")
    await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="hi")
    result = await sync.sync(ctx, "bob", phone, after=50)
    assert result.reset and result.cursor == await ctx.store.last_seq("inbox:bob")
