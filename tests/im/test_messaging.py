from __future__ import annotations

import pytest
from im_harness import Clock, Users, device, drain, texts

from tidings.errors import Forbidden, InvalidInput, NotFound
from tidings.im import Context, context, groups, messaging, names, sync


async def test_a_direct_message_is_acked_with_its_place(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    ack = await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="hi")
    assert (ack.conversation, ack.seq, ack.duplicate) == ("dm:alice:bob", 1, False)
    assert ack.id and ack.ts == ctx.now()
    second = await messaging.send(ctx, "bob", names.dm("bob", "alice"), text="hey")
    assert second.seq == 2


async def test_an_offline_user_gets_everything_in_order_on_sync(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    phone = await device(ctx, "bob")
    sent = [f"message {i}" for i in range(120)]
    for text in sent:
        await messaging.send(ctx, "alice", names.dm("alice", "bob"), text=text)
    assert texts(await drain(ctx, "bob", phone)) == sent
    assert await drain(ctx, "bob", phone) == []  # the cursor moved past them


async def test_a_user_who_had_no_device_gets_earlier_messages_on_first_login(
    ctx: Context, users: Users
) -> None:
    await users("alice", "bob")
    await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="while you were out")
    assert texts(await drain(ctx, "bob", await device(ctx, "bob"))) == ["while you were out"]


async def test_each_device_sees_every_message_exactly_once(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    laptop, phone = await device(ctx, "alice"), await device(ctx, "alice")
    conversation = names.dm("alice", "bob")
    await messaging.send(ctx, "bob", conversation, text="one")
    assert texts(await drain(ctx, "alice", laptop)) == ["one"]
    await messaging.send(ctx, "alice", conversation, text="two (from the laptop)")
    await messaging.send(ctx, "bob", conversation, text="three")
    assert texts(await drain(ctx, "alice", laptop)) == ["two (from the laptop)", "three"]
    # The phone was off all along: its own cursor still starts at the beginning.
    assert texts(await drain(ctx, "alice", phone)) == ["one", "two (from the laptop)", "three"]


async def test_a_retried_send_returns_the_first_ack_and_writes_nothing(
    ctx: Context, users: Users
) -> None:
    await users("alice", "bob")
    conversation = names.dm("alice", "bob")
    first = await messaging.send(ctx, "alice", conversation, text="once", client_msg_id="c-1")
    heads = await ctx.store.heads([conversation, "inbox:alice", "inbox:bob"])
    again = await messaging.send(ctx, "alice", conversation, text="once", client_msg_id="c-1")
    assert again.duplicate and (again.seq, again.id, again.ts) == (first.seq, first.id, first.ts)
    assert await ctx.store.heads([conversation, "inbox:alice", "inbox:bob"]) == heads
    # Another sender may use the same client id: ids are scoped by sender.
    other = await messaging.send(ctx, "bob", conversation, text="mine", client_msg_id="c-1")
    assert not other.duplicate and other.seq == first.seq + 1


async def test_nobody_posts_to_or_reads_another_pair_s_conversation(
    ctx: Context, users: Users
) -> None:
    await users("alice", "bob", "mallory")
    await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="secret")
    with pytest.raises(Forbidden):
        await messaging.send(ctx, "mallory", names.dm("alice", "bob"), text="hi")
    with pytest.raises(Forbidden):
        await sync.history(ctx, "mallory", names.dm("alice", "bob"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"text": ""},
        {"text": "   "},
        {"text": "x" * 4001},
        {"text": 42},
        {"data": "not an object"},
        {"text": "ok", "client_msg_id": ""},
        {"text": "ok", "client_msg_id": "x" * 65},
    ],
)
async def test_bad_messages_are_refused_and_write_nothing(
    ctx: Context, users: Users, kwargs: dict[str, object]
) -> None:
    await users("alice", "bob")
    with pytest.raises(InvalidInput):
        await messaging.send(ctx, "alice", names.dm("alice", "bob"), **kwargs)  # type: ignore[arg-type]
    assert await ctx.store.last_seq(names.dm("alice", "bob")) == 0


@pytest.mark.parametrize("conversation", ["dm:bob:alice", "dm:alice", "chat:x", "group:", 7])
async def test_malformed_conversation_ids_are_refused(
    ctx: Context, users: Users, conversation: object
) -> None:
    await users("alice", "bob")
    with pytest.raises(InvalidInput):
        await messaging.send(ctx, "alice", conversation, text="hi")  # type: ignore[arg-type]


async def test_a_message_to_an_unknown_user_is_not_found(ctx: Context, users: Users) -> None:
    await users("alice")
    with pytest.raises(NotFound):
        await messaging.send(ctx, "alice", names.dm("alice", "nobody"), text="hi")


async def test_structured_messages_carry_their_data(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    data = {"type": "file", "name": "报告.pdf", "size": 1234, "reply_to": 1}
    ack = await messaging.send(ctx, "alice", names.dm("alice", "bob"), data=data, text="see this")
    [message], _ = await sync.history(ctx, "bob", ack.conversation)
    assert message["kind"] == "data" and message["data"] == data and message["text"] == "see this"


async def test_mentions_of_members_are_recorded(ctx: Context, users: Users) -> None:
    await users("alice", "bob", "carol", "dave")
    group = await groups.create(ctx, "alice", "team", members=["bob", "carol"])
    ack = await messaging.send(
        ctx, "alice", group["conversation"], text="@bob and @dave, see @carol", mentions=["carol"]
    )
    [message], _ = await sync.history(ctx, "bob", ack.conversation, limit=1)
    assert message["mentions"] == ["carol", "bob"]  # dave is not a member


async def test_the_sender_recalls_within_the_window_and_every_device_converges(
    ctx: Context, users: Users, clock: Clock
) -> None:
    await users("alice", "bob")
    bob_phone, alice_laptop = await device(ctx, "bob"), await device(ctx, "alice")
    ack = await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="oops")
    clock.advance(ctx.settings.recall_window - 1)
    await messaging.recall(ctx, "alice", ack.conversation, ack.seq)
    for user, dev in (("bob", bob_phone), ("alice", alice_laptop)):
        events = await drain(ctx, user, dev)
        kinds = [e["message"]["kind"] for e in events]
        assert kinds == ["text", "recall"]
        assert events[1]["message"]["target"] == ack.seq
    history, _ = await sync.history(ctx, "bob", ack.conversation)
    original = next(m for m in history if m["seq"] == ack.seq)
    assert original["recalled"] and original["text"] == ""


async def test_recall_after_the_window_is_refused(ctx: Context, users: Users, clock: Clock) -> None:
    await users("alice", "bob")
    ack = await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="too late")
    clock.advance(ctx.settings.recall_window + 1)
    with pytest.raises(Forbidden):
        await messaging.recall(ctx, "alice", ack.conversation, ack.seq)
    with pytest.raises(Forbidden):
        await messaging.recall(ctx, "bob", ack.conversation, ack.seq)


async def test_group_admins_recall_any_message_any_time(
    ctx: Context, users: Users, clock: Clock
) -> None:
    await users("alice", "bob", "carol")
    group = await groups.create(ctx, "alice", "team", members=["bob", "carol"])
    ack = await messaging.send(ctx, "bob", group["conversation"], text="spam")
    clock.advance(86_400)
    with pytest.raises(Forbidden):
        await messaging.recall(ctx, "carol", ack.conversation, ack.seq)
    await messaging.recall(ctx, "alice", ack.conversation, ack.seq)
    history, _ = await sync.history(ctx, "carol", ack.conversation)
    assert next(m for m in history if m["seq"] == ack.seq)["recalled"]


async def test_an_edit_reaches_every_device_and_changes_history(
    ctx: Context, users: Users, clock: Clock
) -> None:
    await users("alice", "bob")
    phone = await device(ctx, "bob")
    ack = await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="helo")
    await messaging.edit(ctx, "alice", ack.conversation, ack.seq, "hello")
    events = await drain(ctx, "bob", phone)
    assert events[-1]["message"]["kind"] == "edit"
    assert events[-1]["message"]["text"] == "hello"
    history, _ = await sync.history(ctx, "bob", ack.conversation)
    assert next(m for m in history if m["seq"] == ack.seq)["text"] == "hello"
    with pytest.raises(Forbidden):
        await messaging.edit(ctx, "bob", ack.conversation, ack.seq, "not yours")
    clock.advance(ctx.settings.edit_window + 1)
    with pytest.raises(Forbidden):
        await messaging.edit(ctx, "alice", ack.conversation, ack.seq, "too late")


async def test_a_recalled_message_is_not_synced_with_its_old_text(
    ctx: Context, users: Users
) -> None:
    await users("alice", "bob")
    ack = await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="secret")
    await messaging.recall(ctx, "alice", ack.conversation, ack.seq)
    # A device that syncs only now (a new login, say) sees the recalled state.
    events = await drain(ctx, "bob", await device(ctx, "bob"))
    original = events[0]["message"]
    assert original["seq"] == ack.seq and original["recalled"] and original["text"] == ""
    assert "secret" not in str(events)


async def test_a_member_who_left_cannot_change_their_old_messages(
    ctx: Context, users: Users
) -> None:
    await users("alice", "bob")
    group = await groups.create(ctx, "alice", "team", members=["bob"])
    ack = await messaging.send(ctx, "bob", group["conversation"], text="mine")
    await groups.leave(ctx, "bob", group["id"])
    head = await ctx.store.last_seq(group["conversation"])
    with pytest.raises(Forbidden):
        await messaging.edit(ctx, "bob", ack.conversation, ack.seq, "changed")
    with pytest.raises(Forbidden):
        await messaging.recall(ctx, "bob", ack.conversation, ack.seq)
    assert await ctx.store.last_seq(group["conversation"]) == head


async def test_the_caches_of_known_users_and_conversations_stay_bounded(
    ctx: Context, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-running server sees ever more users and conversations: the
    "exists" caches start over at their bound, and nothing is forgotten that
    the store does not still know."""
    monkeypatch.setattr(context, "KNOWN_MAX", 3)
    people = await users(*(f"user{n}" for n in range(6)))
    for sender, recipient in zip(people, people[1:], strict=False):
        await messaging.send(ctx, sender, names.dm(sender, recipient), text="hi")
    assert 0 < len(ctx.known_users) <= 3 and 0 < len(ctx.known_dms) <= 3
    for sender, recipient in zip(people, people[1:], strict=False):  # all still work
        ack = await messaging.send(ctx, recipient, names.dm(sender, recipient), text="hello")
        assert ack.seq == 2
    with pytest.raises(NotFound):
        await messaging.send(ctx, "user0", names.dm("user0", "nobody"), text="hi")
