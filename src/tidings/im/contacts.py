"""Contacts and blocks.

A contact is a pair of records ``contact:<u>:<other>`` whose ``state`` is
``outgoing`` (u asked), ``incoming`` (other asked) or ``accepted``. A block is
a record ``block:<u>:<other>``; it removes any contact and stops direct
messages and contact requests from ``other`` to ``u``. Each change reaches both
users' devices as a ``contact`` event in their inboxes.
"""

from __future__ import annotations

from typing import Any

from ..errors import Forbidden, InvalidInput, NotFound
from ..timeline import Append
from . import access, names
from .context import Context
from .events import InboxAdvanced


async def _target(ctx: Context, user: str, other: str) -> str:
    other = names.username(other)
    if other == user:
        raise InvalidInput("that is you", field="username")
    await ctx.require_user(other)
    return other


async def _state(ctx: Context, user: str, other: str) -> str | None:
    record = await ctx.store.get_meta(f"contact:{user}:{other}")
    return None if record is None else str(record["state"])


async def _set(ctx: Context, user: str, other: str, mine: str | None, theirs: str | None) -> None:
    """Write both sides' states (None deletes) and tell both users' devices."""
    access.forget_dm_rules(ctx, user, other)
    for owner, peer, state in ((user, other, mine), (other, user, theirs)):
        if state is None:
            await ctx.store.delete_meta(f"contact:{owner}:{peer}")
        else:
            await ctx.store.put_meta(
                f"contact:{owner}:{peer}", {"state": state, "since": ctx.now()}
            )
    batch = await ctx.store.append_many(
        [
            Append(names.inbox(user), {"type": "contact", "user": other, "state": mine}),
            Append(names.inbox(other), {"type": "contact", "user": user, "state": theirs}),
        ]
    )
    for entry in batch.entries:
        ctx.publish(InboxAdvanced(entry.timeline_id.removeprefix("inbox:"), (entry,)))


async def request(ctx: Context, user: str, other: str) -> str:
    """Ask ``other`` to become a contact; when they had asked already, this
    accepts. Returns the resulting state."""
    other = await _target(ctx, user, other)
    if await ctx.store.get_meta(f"block:{other}:{user}") is not None:
        raise Forbidden("this user does not accept contact requests from you")
    state = await _state(ctx, user, other)
    if state in ("accepted", "outgoing"):
        return state
    if state == "incoming":
        await _set(ctx, user, other, "accepted", "accepted")
        return "accepted"
    await _set(ctx, user, other, "outgoing", "incoming")
    return "outgoing"


async def accept(ctx: Context, user: str, other: str) -> None:
    other = await _target(ctx, user, other)
    state = await _state(ctx, user, other)
    if state == "accepted":
        return
    if state != "incoming":
        raise NotFound("no contact request from this user")
    await _set(ctx, user, other, "accepted", "accepted")


async def decline(ctx: Context, user: str, other: str) -> None:
    other = await _target(ctx, user, other)
    if await _state(ctx, user, other) != "incoming":
        raise NotFound("no contact request from this user")
    await _set(ctx, user, other, None, None)


async def remove(ctx: Context, user: str, other: str) -> None:
    """Remove a contact (or withdraw one's request). Absent is not an error."""
    other = await _target(ctx, user, other)
    if await _state(ctx, user, other) is not None:
        await _set(ctx, user, other, None, None)


async def block(ctx: Context, user: str, other: str) -> None:
    other = await _target(ctx, user, other)
    await ctx.store.put_meta(f"block:{user}:{other}", {"since": ctx.now()})
    access.forget_dm_rules(ctx, user)
    if await _state(ctx, user, other) is not None:
        await _set(ctx, user, other, None, None)


async def unblock(ctx: Context, user: str, other: str) -> None:
    other = await _target(ctx, user, other)
    await ctx.store.delete_meta(f"block:{user}:{other}")
    access.forget_dm_rules(ctx, user)


async def contacts(ctx: Context, user: str) -> list[dict[str, Any]]:
    """The user's contacts and pending requests, with states."""
    prefix = f"contact:{user}:"
    return [
        {"username": record_id.removeprefix(prefix), **record}
        for record_id, record in await ctx.records(prefix)
    ]


async def blocked(ctx: Context, user: str) -> list[str]:
    prefix = f"block:{user}:"
    return [record_id.removeprefix(prefix) for record_id, _ in await ctx.records(prefix)]
