from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from im_harness import Users, device, drain, texts

from tidings.errors import Conflict, Forbidden, InvalidInput, NotFound
from tidings.im import Context, GroupAdvanced, groups, messaging, sync
from tidings.im.events import Delivery


async def roles(ctx: Context, user: str, gid: str) -> dict[str, str]:
    return {m["username"]: m["role"] for m in await groups.members(ctx, user, gid)}


async def test_the_creator_owns_the_group(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    group = await groups.create(
        ctx, "alice", "梧桐 fans", type="open", description="trees", members=["bob"]
    )
    assert group["owner"] == "alice" and group["member_count"] == 2
    assert await roles(ctx, "bob", group["id"]) == {"alice": "owner", "bob": "member"}
    assert [g["id"] for g in await groups.groups_of(ctx, "bob")] == [group["id"]]


async def test_joins_and_leaves_on_two_nodes_at_once_all_count(ctx: Context, users: Users) -> None:
    """Two nodes (contexts, each with its own in-process locks) admitting and
    dismissing members of one group at the same moment: the member count is
    exact, and the member list agrees with it."""
    people = await users("alice", *(f"user{n}" for n in range(16)))
    group = await groups.create(ctx, "alice", "busy", type="open")
    gid = group["id"]
    other = Context(ctx.store, ctx.settings)  # a second node on the same store
    nodes = (ctx, other)
    await asyncio.gather(
        *(groups.join(nodes[n % 2], user, gid) for n, user in enumerate(people[1:]))
    )
    assert (await groups.info(ctx, "alice", gid))["member_count"] == 17
    await asyncio.gather(
        *(groups.leave(nodes[n % 2], user, gid) for n, user in enumerate(people[1:9]))
    )
    info = await groups.info(other, "alice", gid)
    assert info["member_count"] == 9 == len(await groups.members(ctx, "alice", gid))


async def test_a_user_admitted_on_two_nodes_at_once_is_one_member(
    ctx: Context, users: Users
) -> None:
    """Joining on one node while an admin adds the same user on another: one
    membership, counted once, announced once."""
    people = await users("alice", *(f"user{n}" for n in range(6)))
    gid = (await groups.create(ctx, "alice", "open door", type="open"))["id"]
    other = Context(ctx.store, ctx.settings)
    await asyncio.gather(
        *(groups.join(ctx, user, gid) for user in people[1:]),
        *(groups.add_members(other, "alice", gid, [user]) for user in people[1:]),
    )
    info = await groups.info(ctx, "alice", gid)
    assert info["member_count"] == 7 == len(await groups.members(ctx, "alice", gid))
    page = await ctx.store.scan(f"group:{gid}", limit=100)
    admitted = [
        user
        for entry in page.entries
        if entry.message.get("event") in ("joined", "added")
        for user in entry.message["users"]
    ]
    assert sorted(admitted) == sorted(people[1:])


async def test_the_member_cap_holds_when_nodes_admit_at_once(ctx: Context, users: Users) -> None:
    people = await users("alice", *(f"user{n}" for n in range(10)))
    settings = dataclasses.replace(ctx.settings, max_group_members=5)
    nodes = (Context(ctx.store, settings), Context(ctx.store, settings))
    gid = (await groups.create(nodes[0], "alice", "small", type="open"))["id"]
    outcomes = await asyncio.gather(
        *(groups.join(nodes[n % 2], user, gid) for n, user in enumerate(people[1:])),
        return_exceptions=True,
    )
    assert sum(outcome is None for outcome in outcomes) == 4
    assert all(isinstance(o, Conflict) for o in outcomes if o is not None)
    info = await groups.info(ctx, "alice", gid)
    assert info["member_count"] == 5 == len(await groups.members(ctx, "alice", gid))


async def test_group_ids_are_unique_and_checked(ctx: Context, users: Users) -> None:
    await users("alice")
    await groups.create(ctx, "alice", "rust", gid="rust")
    with pytest.raises(Conflict):
        await groups.create(ctx, "alice", "rust again", gid="rust")
    with pytest.raises(InvalidInput):
        await groups.create(ctx, "alice", "bad", gid="no spaces")
    with pytest.raises(InvalidInput):
        await groups.create(ctx, "alice", "", gid="empty-name")
    with pytest.raises(InvalidInput):
        await groups.create(ctx, "alice", "x", type="secret")


async def test_only_open_groups_can_be_joined(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    open_group = await groups.create(ctx, "alice", "open", type="open")
    closed = await groups.create(ctx, "alice", "closed")
    await groups.join(ctx, "bob", open_group["id"])
    await groups.join(ctx, "bob", open_group["id"])  # again: no change
    assert (await groups.info(ctx, "bob", open_group["id"]))["member_count"] == 2
    with pytest.raises(NotFound):
        await groups.join(ctx, "bob", closed["id"])
    with pytest.raises(NotFound):  # closed groups look absent to outsiders
        await groups.info(ctx, "bob", closed["id"])


async def test_roles_limit_who_adds_and_removes(ctx: Context, users: Users) -> None:
    await users("alice", "bob", "carol", "dave")
    gid = (await groups.create(ctx, "alice", "team", members=["bob", "carol"]))["id"]
    with pytest.raises(Forbidden):
        await groups.add_members(ctx, "bob", gid, ["dave"])
    await groups.set_role(ctx, "alice", gid, "bob", "admin")
    await groups.add_members(ctx, "bob", gid, ["dave"])
    await groups.remove_member(ctx, "bob", gid, "dave")
    with pytest.raises(Forbidden):
        await groups.remove_member(ctx, "bob", gid, "alice")
    with pytest.raises(Forbidden):
        await groups.set_role(ctx, "bob", gid, "carol", "admin")
    assert await roles(ctx, "alice", gid) == {"alice": "owner", "bob": "admin", "carol": "member"}


async def test_ownership_moves_and_the_owner_cannot_just_leave(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    gid = (await groups.create(ctx, "alice", "team", members=["bob"]))["id"]
    with pytest.raises(Conflict):
        await groups.leave(ctx, "alice", gid)
    await groups.transfer_ownership(ctx, "alice", gid, "bob")
    assert await roles(ctx, "bob", gid) == {"alice": "admin", "bob": "owner"}
    await groups.leave(ctx, "alice", gid)
    assert await roles(ctx, "bob", gid) == {"bob": "owner"}


async def test_a_non_member_cannot_send_to_or_read_a_group(ctx: Context, users: Users) -> None:
    await users("alice", "mallory")
    group = await groups.create(ctx, "alice", "team")
    head = await ctx.store.last_seq(group["conversation"])
    with pytest.raises(Forbidden):
        await messaging.send(ctx, "mallory", group["conversation"], text="hi")
    with pytest.raises(Forbidden):
        await sync.history(ctx, "mallory", group["conversation"])
    assert await ctx.store.last_seq(group["conversation"]) == head


async def test_a_member_who_left_gets_nothing_after_and_reads_only_before(
    ctx: Context, users: Users
) -> None:
    await users("alice", "bob")
    group = await groups.create(ctx, "alice", "team", members=["bob"])
    conversation = group["conversation"]
    phone = await device(ctx, "bob")
    await messaging.send(ctx, "alice", conversation, text="before")
    await groups.leave(ctx, "bob", group["id"])
    await messaging.send(ctx, "alice", conversation, text="after")
    events = await drain(ctx, "bob", phone)
    assert texts(events) == ["before"]
    assert events[-1]["message"]["event"] == "left"  # bob's devices learn he left
    history, _ = await sync.history(ctx, "bob", conversation)
    assert [m.get("text") for m in history if m["kind"] == "text"] == ["before"]
    assert all(m["seq"] <= events[-1]["message"]["seq"] for m in history)
    with pytest.raises(Forbidden):
        await messaging.send(ctx, "bob", conversation, text="still here?")


async def test_a_new_member_reads_from_the_point_they_joined(ctx: Context, users: Users) -> None:
    await users("alice", "bob")
    group = await groups.create(ctx, "alice", "team", type="open")
    await messaging.send(ctx, "alice", group["conversation"], text="before bob")
    await groups.join(ctx, "bob", group["id"])
    await messaging.send(ctx, "alice", group["conversation"], text="welcome")
    history, _ = await sync.history(ctx, "bob", group["conversation"], direction="forward")
    assert [m.get("event") or m.get("text") for m in history] == ["joined", "welcome"]


async def test_a_group_of_five_all_receive_each_message_once(ctx: Context, users: Users) -> None:
    members = await users("alice", "bob", "carol", "dave")
    group = await groups.create(ctx, "alice", "five", members=members[1:])
    await users("erin")
    await groups.add_members(ctx, "alice", group["id"], ["erin"])
    devices = {name: await device(ctx, name) for name in [*members, "erin"]}
    await messaging.send(ctx, "carol", group["conversation"], text="hello all")
    for name, dev in devices.items():
        seen = await observed(ctx, name, dev, group["conversation"])
        assert [text for _, text in seen if text == "hello all"] == ["hello all"], name


async def observed(ctx: Context, user: str, dev: str, conversation: str) -> list[Any]:
    """What a member's client ends up showing: messages from the inbox plus, for
    read-fan-out groups, those pulled from the group history after its cursor."""
    shown: dict[int, str] = {}
    result = await sync.sync(ctx, user, dev, limit=1000)
    for event in result.events:
        if event["type"] == "message" and event["message"]["conversation"] == conversation:
            shown[event["message"]["seq"]] = (
                event["message"].get("text") or event["message"]["kind"]
            )
    if conversation in result.heads:
        after = max(shown, default=0)
        while after < result.heads[conversation]:
            page, _ = await sync.history(
                ctx, user, conversation, after=after, direction="forward", limit=200
            )
            if not page:
                break
            for message in page:
                shown[message["seq"]] = message.get("text") or message["kind"]
            after = page[-1]["seq"]
    return sorted(shown.items())


@pytest.mark.parametrize("size", [3, 8])
async def test_write_and_read_fan_out_look_the_same_to_members(
    ctx: Context, users: Users, published: list[Delivery], size: int
) -> None:
    # The fixture's threshold is 4 members: 3 is write fan-out, 8 read fan-out.
    names = await users(*[f"user{i}" for i in range(size)])
    devices = {name: await device(ctx, name) for name in names}
    group = await groups.create(ctx, names[0], "g", members=names[1:])
    for i in range(5):
        await messaging.send(ctx, names[i % size], group["conversation"], text=f"m{i}")
    expected = None
    for name, dev in devices.items():
        seen = await observed(ctx, name, dev, group["conversation"])
        messages = [(seq, text) for seq, text in seen if text.startswith("m")]
        assert [text for _, text in messages] == [f"m{i}" for i in range(5)]
        expected = expected or messages
        assert messages == expected
        # Every member also sees each membership change from their own joining on.
        joined = min(seq for seq, _ in seen)
        assert [seq for seq, _ in seen] == list(range(joined, max(s for s, _ in seen) + 1))
    heads = [d for d in published if isinstance(d, GroupAdvanced)]
    inbox_rows = await ctx.store.last_seq(f"inbox:{names[-1]}")
    if size > ctx.settings.write_fanout_max:
        assert heads and set(heads[-1].members) == set(names)
        assert inbox_rows == 0
    else:
        assert not heads and inbox_rows > 0


async def test_ownership_cannot_be_transferred_to_oneself(ctx: Context, users: Users) -> None:
    await users("alice")
    gid = (await groups.create(ctx, "alice", "team"))["id"]
    with pytest.raises(InvalidInput):
        await groups.transfer_ownership(ctx, "alice", gid, "alice")
    assert await roles(ctx, "alice", gid) == {"alice": "owner"}
