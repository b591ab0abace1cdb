"""The access checks every path calls: who may read and who may post where.

Rules:
- A direct conversation ``dm:a:b`` is readable by ``a`` and ``b``, whole.
  ``a`` may post unless ``b`` blocked ``a``, or ``b`` accepts direct messages
  from contacts only and ``a`` is not one.
- A group conversation is readable by a member from the seq of the system
  message that recorded their joining up to the one that recorded their
  leaving (inclusive): history from before they joined is not theirs, and
  after they left they keep what they saw. Only current members post.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import Forbidden
from . import names
from .context import Context

# A "may message" decision (the recipient's policy, blocks, contact state) is
# reused for this long, sparing two reads on every direct send. A change made
# in this process forgets it at once (forget_dm_rules); one made on another
# node applies within this time.
DM_RULE_SECONDS = 5.0
# Past this many recipients the decisions are all forgotten, bounding memory.
DM_RULE_RECIPIENTS = 100_000


@dataclass(frozen=True, slots=True)
class Window:
    """The seqs of a conversation a user may read: ``first <= seq <= last``."""

    first: int
    last: int | None = None

    def clip(self, after: int | None, before: int | None) -> tuple[int, int | None] | None:
        """Narrow exclusive scan bounds to the window; None when nothing is left."""
        low = max(after or 0, self.first - 1)
        high = before
        if self.last is not None:
            high = self.last + 1 if high is None else min(high, self.last + 1)
        if high is not None and low + 1 >= high:
            return None
        return low, high


async def membership(ctx: Context, user: str, gid: str) -> dict[str, Any] | None:
    """The user's membership record of a group (current or past), or None."""
    return await ctx.store.get_meta(f"membership:{user}:{gid}")


async def read_window(ctx: Context, user: str, conversation: str) -> Window:
    """What of ``conversation`` the user may read.

    Raises:
        Forbidden: not a party to the conversation.
    """
    if names.is_group(conversation):
        record = await membership(ctx, user, names.group_of(conversation))
        window = membership_window(record)
        if window is not None:
            return window
        if record is None or record.get("joined_seq") is None:
            raise Forbidden("you are not a member of this group", conversation=conversation)
        raise Forbidden("you are leaving this group", conversation=conversation)
    dm_peer(user, conversation)
    return Window(1)


def dm_peer(user: str, conversation: str) -> str:
    """The other user of a direct conversation of ``user``'s (``user`` itself
    for notes to self).

    Raises:
        Forbidden: ``user`` is not one of its two users.
        InvalidInput: not a direct conversation id.
    """
    a, b = names.dm_members(conversation)
    if user not in (a, b):
        raise Forbidden("this conversation is not yours", conversation=conversation)
    return b if user == a else a


def membership_window(record: dict[str, Any] | None) -> Window | None:
    """The part of a group a membership record lets its user read, or None
    (never a member, or leaving right now)."""
    if record is None or record.get("joined_seq") is None:
        return None
    if not record.get("active") and record.get("left_seq") is None:
        return None
    return Window(record["joined_seq"], None if record.get("active") else record["left_seq"])


async def check_dm_allowed(ctx: Context, sender: str, recipient: str) -> None:
    """Raise Forbidden when ``sender`` may not message ``recipient`` directly."""
    allowed = ctx.dm_allowed.get(recipient)
    if allowed is not None and allowed.get(sender, 0.0) > ctx.now():
        return
    await _check_dm_rules(ctx, sender, recipient)
    if len(ctx.dm_allowed) > DM_RULE_RECIPIENTS:
        ctx.dm_allowed.clear()
    ctx.dm_allowed.setdefault(recipient, {})[sender] = ctx.now() + DM_RULE_SECONDS


def forget_dm_rules(ctx: Context, *users: str) -> None:
    """The users' policy, blocks or contacts changed: decide their direct
    messages afresh."""
    for user in users:
        ctx.dm_allowed.pop(user, None)


async def _check_dm_rules(ctx: Context, sender: str, recipient: str) -> None:
    profile = await ctx.require_user(recipient)
    if sender == recipient:
        return
    if await ctx.store.get_meta(f"block:{recipient}:{sender}") is not None:
        raise Forbidden("this user does not accept your messages", user=recipient)
    if profile is None:
        profile = await ctx.store.get_meta(f"user:{recipient}") or {}
    if profile.get("dm_policy") == "contacts":
        contact = await ctx.store.get_meta(f"contact:{recipient}:{sender}")
        if contact is None or contact.get("state") != "accepted":
            raise Forbidden("this user accepts messages from contacts only", user=recipient)


async def require_member(ctx: Context, user: str, gid: str) -> dict[str, Any]:
    """The user's current membership record.

    Raises:
        Forbidden: not a current member.
    """
    record = await membership(ctx, user, gid)
    if record is None or not record.get("active"):
        raise Forbidden("you are not a member of this group", group=gid)
    return record


async def require_role(ctx: Context, user: str, gid: str, *roles: str) -> dict[str, Any]:
    """The user's current membership record, which must have one of ``roles``.

    Raises:
        Forbidden: not a member, or a member without the role.
    """
    record = await require_member(ctx, user, gid)
    if record.get("role") not in roles:
        raise Forbidden(f"only a group {' or '.join(roles)} may do this", group=gid)
    return record
