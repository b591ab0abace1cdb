from __future__ import annotations

import pytest
from im_harness import Users, device, drain

from tidings.errors import Forbidden, NotFound
from tidings.im import Context, accounts, contacts, messaging, names


async def states(ctx: Context, user: str) -> dict[str, str]:
    return {c["username"]: c["state"] for c in await contacts.contacts(ctx, user)}


async def test_a_request_is_accepted_and_both_sides_see_it(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    bob_phone = await device(ctx, "bob")
    assert await contacts.request(ctx, "alice", "bob") == "outgoing"
    assert await states(ctx, "bob") == {"alice": "incoming"}
    await contacts.accept(ctx, "bob", "alice")
    assert await states(ctx, "alice") == {"bob": "accepted"}
    assert await states(ctx, "bob") == {"alice": "accepted"}
    events = await drain(ctx, "bob", bob_phone)
    assert [(e["type"], e["state"]) for e in events] == [
        ("contact", "incoming"),
        ("contact", "accepted"),
    ]


async def test_crossing_requests_accept_each_other(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    await contacts.request(ctx, "alice", "bob")
    assert await contacts.request(ctx, "bob", "alice") == "accepted"


async def test_a_declined_request_leaves_nothing(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    await contacts.request(ctx, "alice", "bob")
    await contacts.decline(ctx, "bob", "alice")
    assert await states(ctx, "alice") == {} and await states(ctx, "bob") == {}
    with pytest.raises(NotFound):
        await contacts.accept(ctx, "bob", "alice")


async def test_removing_a_contact_removes_both_sides(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    await contacts.request(ctx, "alice", "bob")
    await contacts.accept(ctx, "bob", "alice")
    await contacts.remove(ctx, "bob", "alice")
    assert await states(ctx, "alice") == {}


async def test_a_blocked_user_cannot_message_or_ask(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    await contacts.request(ctx, "alice", "bob")
    await contacts.accept(ctx, "bob", "alice")
    await contacts.block(ctx, "bob", "alice")
    assert await states(ctx, "bob") == {}
    conversation = names.dm("alice", "bob")
    head = await ctx.store.last_seq(conversation)
    with pytest.raises(Forbidden):
        await messaging.send(ctx, "alice", conversation, text="hello?")
    with pytest.raises(Forbidden):
        await contacts.request(ctx, "alice", "bob")
    assert await ctx.store.last_seq(conversation) == head
    # The blocker can still write, and unblocking restores the other way.
    await messaging.send(ctx, "bob", conversation, text="bye")
    await contacts.unblock(ctx, "bob", "alice")
    await messaging.send(ctx, "alice", conversation, text="thanks")


async def test_contacts_only_setting_restricts_direct_messages(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    await accounts.update_profile(ctx, "bob", {"dm_policy": "contacts"})
    conversation = names.dm("alice", "bob")
    with pytest.raises(Forbidden):
        await messaging.send(ctx, "alice", conversation, text="hi")
    await contacts.request(ctx, "alice", "bob")
    await contacts.accept(ctx, "bob", "alice")
    await messaging.send(ctx, "alice", conversation, text="hi")


async def test_direct_messages_to_non_contacts_are_allowed_by_default(
    ctx: Context, users: Users
) -> None:
    await users("alice", "bob")
    ack = await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="hi")
    assert ack.seq == 1


async def test_contact_requests_to_unknown_users_or_oneself_fail(
    ctx: Context, users: Users
) -> None:
    await users("alice")
    with pytest.raises(NotFound):
        await contacts.request(ctx, "alice", "nobody")
    with pytest.raises(Exception, match="that is you"):
        await contacts.request(ctx, "alice", "alice")
