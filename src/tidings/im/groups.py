"""Groups: creation, membership, roles.

A group is a record ``group:<gid>`` (name, type, description, owner,
member_count) and a history timeline of the same id. Each member has a record
``member:<gid>:<u>`` (current members, for fan-out and listing) and
``membership:<u>:<gid>`` (current and past, for the read window and the user's
group list). Every membership change is a ``system`` entry of the group's
history, fanned out like a message, so members' devices see it in order.

Types: ``open`` groups are joinable and findable by anyone; ``closed`` groups
take members only when an owner or admin adds them.
"""

from __future__ import annotations

import secrets
from typing import Any

from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from . import access, names
from .accounts import claim
from .context import Context
from .messaging import append_to_conversation, audience, group_members, new_message_id

GROUP_TYPES = ("open", "closed")
ROLES = ("owner", "admin", "member")
MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 500
# Adding thousands of members at once is announced in entries of this many
# names, each well under the store's message size limit.
ANNOUNCE_USERS = 500


def _fields(name: object = None, type: object = None, description: object = None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if name is not None:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
            raise InvalidInput(f"a group name is 1 to {MAX_NAME_CHARS} characters", field="name")
        fields["name"] = name.strip()
    if type is not None:
        if type not in GROUP_TYPES:
            raise InvalidInput("a group type is 'open' or 'closed'", field="type")
        fields["type"] = type
    if description is not None:
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
            raise InvalidInput(
                f"a description is at most {MAX_DESCRIPTION_CHARS} characters", field="description"
            )
        fields["description"] = description
    return fields


async def create(
    ctx: Context,
    owner: str,
    name: str,
    *,
    type: str = "closed",
    description: str = "",
    gid: str | None = None,
    members: list[str] | None = None,
) -> dict[str, Any]:
    """Create a group with ``owner`` as its owner and ``members`` added.

    Returns:
        The group's record, with its ``id``.

    Raises:
        InvalidInput: bad name, type, description or id. Conflict: the id is taken.
        NotFound: a member does not exist.
    """
    fields = _fields(name, type, description)
    gid = names.group_id(gid) if gid is not None else "g" + secrets.token_hex(6)
    invited = [names.username(m) for m in members or []]
    for member in invited:
        await ctx.require_user(member)
    async with ctx.lock(f"group:{gid}"):
        if await ctx.store.get_meta(names.group(gid)) is not None or not await claim(
            ctx, "groups", gid
        ):
            raise Conflict(f"the group id {gid!r} is taken", field="group_id")
        record = {**fields, "owner": owner, "created_at": ctx.now(), "member_count": 0}
        await ctx.store.put_meta(names.group(gid), record)
        await _admit(ctx, gid, [owner], "owner", by=owner, event="created")
        others = [m for m in dict.fromkeys(invited) if m != owner]
        if others:
            await _admit(ctx, gid, others, "member", by=owner, event="added")
    return await info(ctx, owner, gid)


async def info(ctx: Context, user: str, gid: str) -> dict[str, Any]:
    """The group's record, for members of any group and anyone for open groups.

    Raises:
        NotFound: no such group, or a closed group the user is not in.
    """
    record = await ctx.store.get_meta(names.group(gid))
    if record is None:
        raise NotFound(f"no group {gid!r}")
    if record["type"] != "open":
        mine = await access.membership(ctx, user, gid)
        if mine is None or not mine.get("active"):
            raise NotFound(f"no group {gid!r}")
    return {"id": gid, "conversation": names.group(gid), **record}


async def update(ctx: Context, actor: str, gid: str, **changes: Any) -> dict[str, Any]:
    """Change name, type or description (owner or admin)."""
    fields = _fields(**changes)
    if not fields:
        raise InvalidInput("nothing to change")
    await access.require_role(ctx, actor, gid, "owner", "admin")
    await ctx.store.update_meta(names.group(gid), fields)
    await _announce(ctx, gid, {"event": "updated", "by": actor, "changes": fields})
    return await info(ctx, actor, gid)


async def add_members(ctx: Context, actor: str, gid: str, users: list[str]) -> None:
    """Add users (owner or admin; in open groups any member)."""
    record = await ctx.group_record(gid)
    if record["type"] == "open":
        await access.require_member(ctx, actor, gid)
    else:
        await access.require_role(ctx, actor, gid, "owner", "admin")
    invited = [names.username(raw) for raw in users]
    for user in invited:
        await ctx.require_user(user)
    async with ctx.lock(f"group:{gid}"):
        new = []
        for user in dict.fromkeys(invited):
            current = await access.membership(ctx, user, gid)
            if current is None or not current.get("active"):
                new.append(user)
        if new:
            await _admit(ctx, gid, new, "member", by=actor, event="added")


async def join(ctx: Context, user: str, gid: str) -> None:
    """Join an open group. Joining a group one is in changes nothing.

    Raises:
        NotFound: no such group (closed groups look absent to outsiders).
    """
    record = await ctx.store.get_meta(names.group(gid))
    if record is None or record["type"] != "open":
        raise NotFound(f"no open group {gid!r}")
    async with ctx.lock(f"group:{gid}"):
        current = await access.membership(ctx, user, gid)
        if current is None or not current.get("active"):
            await _admit(ctx, gid, [user], "member", by=user, event="joined")


async def leave(ctx: Context, user: str, gid: str) -> None:
    """Leave a group. The owner must hand ownership over first, unless alone."""
    async with ctx.lock(f"group:{gid}"):
        mine = await access.require_member(ctx, user, gid)
        if mine["role"] == "owner" and (await ctx.group_record(gid))["member_count"] > 1:
            raise Conflict("the owner must transfer ownership before leaving")
        await _dismiss(ctx, gid, user, by=user, event="left")


async def remove_member(ctx: Context, actor: str, gid: str, user: str) -> None:
    """Remove a member (admins remove members; the owner removes anyone)."""
    mine = await access.require_role(ctx, actor, gid, "owner", "admin")
    async with ctx.lock(f"group:{gid}"):
        theirs = await access.membership(ctx, user, gid)
        if theirs is None or not theirs.get("active"):
            raise NotFound(f"{user!r} is not a member")
        if theirs["role"] == "owner" or (theirs["role"] == "admin" and mine["role"] != "owner"):
            raise Forbidden("only the owner may remove an admin; nobody removes the owner")
        await _dismiss(ctx, gid, user, by=actor, event="removed")


async def set_role(ctx: Context, actor: str, gid: str, user: str, role: str) -> None:
    """Make a member an admin or a plain member (owner only)."""
    if role not in ("admin", "member"):
        raise InvalidInput("role is 'admin' or 'member'", field="role")
    await access.require_role(ctx, actor, gid, "owner")
    async with ctx.lock(f"group:{gid}"):
        theirs = await access.require_member(ctx, user, gid)
        if theirs["role"] == "owner":
            raise Forbidden("the owner's role changes only by transferring ownership")
        await _set_role(ctx, gid, user, role)
    await _announce(ctx, gid, {"event": "role", "user": user, "role": role, "by": actor})


async def transfer_ownership(ctx: Context, owner: str, gid: str, new_owner: str) -> None:
    """Hand the group to another member; the old owner becomes an admin."""
    if new_owner == owner:
        raise InvalidInput("you own this group already", field="username")
    await access.require_role(ctx, owner, gid, "owner")
    async with ctx.lock(f"group:{gid}"):
        await access.require_member(ctx, new_owner, gid)
        await _set_role(ctx, gid, new_owner, "owner")
        await _set_role(ctx, gid, owner, "admin")
        await ctx.store.update_meta(names.group(gid), {"owner": new_owner})
    await _announce(ctx, gid, {"event": "owner", "user": new_owner, "by": owner})


async def members(ctx: Context, user: str, gid: str) -> list[dict[str, Any]]:
    """The current members with their roles (visible to members; open groups
    to anyone)."""
    await info(ctx, user, gid)
    found = []
    for member in await group_members(ctx, gid):
        record = await ctx.store.get_meta(f"member:{gid}:{member}") or {}
        found.append({"username": member, "role": record.get("role", "member")})
    return found


async def groups_of(ctx: Context, user: str) -> list[dict[str, Any]]:
    """The groups the user is a current member of, with their role."""
    found = []
    prefix = f"membership:{user}:"
    for record_id, record in await ctx.records(prefix):
        if record.get("active"):
            gid = record_id.removeprefix(prefix)
            group = await ctx.store.get_meta(names.group(gid)) or {}
            found.append(
                {"id": gid, "conversation": names.group(gid), "role": record["role"], **group}
            )
    return found


async def _admit(
    ctx: Context, gid: str, users: list[str], role: str, *, by: str, event: str
) -> None:
    """Make ``users`` members: records first (so the announcement reaches them),
    then one announcement; their history begins right after the head read here."""
    group = await ctx.group_record(gid)
    if group["member_count"] + len(users) > ctx.settings.max_group_members:
        raise Conflict(f"the group is full ({ctx.settings.max_group_members} members)")
    head = await ctx.store.last_seq(names.group(gid))
    record = {"role": role, "active": True, "joined_seq": head + 1, "left_seq": None}
    for user in users:
        await ctx.store.put_meta(f"membership:{user}:{gid}", record)
        await ctx.store.put_meta(f"member:{gid}:{user}", {"role": role})
    ctx.push_audiences.pop(gid, None)
    await ctx.store.update_meta(names.group(gid), _next_roster(), add={"member_count": len(users)})
    for start in range(0, len(users), ANNOUNCE_USERS):
        chunk = users[start : start + ANNOUNCE_USERS]
        await _announce(ctx, gid, {"event": event, "users": chunk, "by": by, "role": role})


async def _dismiss(ctx: Context, gid: str, user: str, *, by: str, event: str) -> None:
    """End a membership: stop fan-out to the user first, then announce it to the
    remaining members and to the user, whose history ends at the announcement."""
    await ctx.group_record(gid)  # NotFound for a group that is gone
    ctx.push_audiences.pop(gid, None)
    await ctx.store.update_meta(f"membership:{user}:{gid}", {"active": False})
    await ctx.store.delete_meta(f"member:{gid}:{user}")
    await ctx.store.update_meta(names.group(gid), _next_roster(), add={"member_count": -1})
    seq = await _announce(ctx, gid, {"event": event, "user": user, "by": by}, direct=(user,))
    await ctx.store.update_meta(f"membership:{user}:{gid}", {"left_seq": seq})


def _next_roster() -> dict[str, str]:
    """A new roster version: senders reuse a member list while it is unchanged.

    A random token, not a counter: two nodes changing one group at once would
    both write "version + 1", and a node that cached the list between the two
    changes would keep it; distinct tokens make it read the list again. Each
    change writes its token after its member records, so the list read under
    the last token has every member.
    """
    return {"roster": secrets.token_hex(8)}


async def _set_role(ctx: Context, gid: str, user: str, role: str) -> None:
    await ctx.store.update_meta(f"membership:{user}:{gid}", {"role": role})
    await ctx.store.update_meta(f"member:{gid}:{user}", {"role": role})


async def _announce(
    ctx: Context, gid: str, event: dict[str, Any], *, direct: tuple[str, ...] = ()
) -> int:
    """Append a system entry to the group's history, fanned out; returns its seq."""
    conversation = names.group(gid)
    recipients, read_fanout = await audience(ctx, conversation)
    now = ctx.now()
    body = {"kind": "system", "id": new_message_id(now), "from": event["by"], "ts": now, **event}
    entry, _ = await append_to_conversation(
        ctx, conversation, body, recipients, read_fanout=read_fanout, direct=direct
    )
    return entry.seq
