"""Sending, recalling and editing messages, and the fan-out under all three.

Every change to a conversation is an entry of its history timeline: messages
(kind ``text`` or ``data``), ``system`` entries (membership and group changes),
``recall`` and ``edit`` entries. Each is fanned out the same way, so every
device converges by reading one ordered stream.
"""

from __future__ import annotations

import random
import re
import secrets
from dataclasses import dataclass
from typing import Any

from ..errors import Forbidden, InvalidInput, NotFound
from ..timeline import Append, Entry
from . import access, names
from .context import Context, remember
from .events import GroupAdvanced, InboxAdvanced

# Kinds a user sends; the others are written by the server.
CONTENT_KINDS = ("text", "data")
MENTION_RE = re.compile(r"@([a-z0-9][a-z0-9_.-]{2,31})")
# How long a large group's member list is reused to address pushes. Members
# added since then still get everything by sync; one removed since then gets
# at most a "new messages" hint it cannot read.
PUSH_AUDIENCE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Ack:
    """What a sender gets once a message is committed."""

    conversation: str
    seq: int
    id: str
    ts: float
    duplicate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversation": self.conversation,
            "seq": self.seq,
            "id": self.id,
            "ts": self.ts,
            "duplicate": self.duplicate,
        }


# Message ids need uniqueness, not secrecy: a PRNG seeded from the OS once is
# ~20x cheaper per id than a urandom call on every send.
_ids = random.Random(secrets.randbits(128))


def new_message_id(now: float) -> str:
    """A unique id that sorts by time: milliseconds, then 64 random bits."""
    return f"{int(now * 1000):012x}{_ids.getrandbits(64):016x}"


async def group_members(ctx: Context, gid: str) -> list[str]:
    """Usernames of the group's current members."""
    prefix = f"member:{gid}:"
    return [record_id.removeprefix(prefix) for record_id, _ in await ctx.records(prefix)]


async def append_to_conversation(
    ctx: Context,
    conversation: str,
    body: dict[str, Any],
    recipients: list[str],
    *,
    client_id: str | None = None,
    read_fanout: bool = False,
    direct: tuple[str, ...] = (),
) -> tuple[Entry, bool]:
    """Append ``body`` to the conversation and fan it out, in one commit.

    With write fan-out every recipient's inbox gets an entry referring to the
    history entry; with read fan-out only the history is written and the
    recipients are told the new head. Users in ``direct`` get an inbox entry in
    either mode (a member being removed from a large group, say). Returns the
    history entry and whether it was a replay of an earlier commit (then
    nothing was written or published).
    """
    items = [Append(conversation, body, client_id)]
    inboxes = direct if read_fanout else (*recipients, *direct)
    items += [Append(names.inbox(user), body, ref=0) for user in dict.fromkeys(inboxes)]
    batch = await ctx.store.append_many(items)
    entry = batch.entries[0]
    if batch.replayed:
        return entry, True
    if read_fanout:
        ctx.publish(GroupAdvanced(conversation, entry.seq, tuple(recipients)))
    for inbox_entry in batch.entries[1:]:
        ctx.publish(InboxAdvanced(inbox_entry.timeline_id.removeprefix("inbox:"), (inbox_entry,)))
    return entry, False


async def audience(ctx: Context, conversation: str) -> tuple[list[str], bool]:
    """Who receives a conversation's entries, and whether it uses read fan-out.

    Write fan-out needs the exact member list (it decides whose inboxes get the
    entry). Read fan-out needs it only to address pushes, so a large group's
    list is reused for ``PUSH_AUDIENCE_SECONDS``.
    """
    if not names.is_group(conversation):
        return list(names.dm_members(conversation)), False
    gid = names.group_of(conversation)
    record = await ctx.group_record(gid)
    if record["member_count"] <= ctx.settings.write_fanout_max:
        return await _roster(ctx, gid, record.get("roster", 0)), False
    cached = ctx.push_audiences.get(gid)
    if cached is None or ctx.now() - cached[0] > PUSH_AUDIENCE_SECONDS:
        cached = ctx.push_audiences[gid] = (ctx.now(), tuple(await group_members(ctx, gid)))
    return list(cached[1]), True


async def _roster(ctx: Context, gid: str, version: object) -> list[str]:
    """The members of a write-fan-out group, read again only when its roster
    version (bumped by every membership change) moved."""
    cached = ctx.rosters.get(gid)
    if cached is None or cached[0] != version:
        cached = ctx.rosters[gid] = (version, tuple(await group_members(ctx, gid)))
    return list(cached[1])


async def send(
    ctx: Context,
    sender: str,
    conversation: str,
    *,
    text: str | None = None,
    data: dict[str, Any] | None = None,
    client_msg_id: str | None = None,
    mentions: list[str] | None = None,
) -> Ack:
    """Send a message: check access, commit it with its fan-out, return the ack.

    Args:
        sender: the sending user.
        conversation: ``dm:<a>:<b>`` or ``group:<gid>``.
        text: the text (kind ``text``), or a caption with ``data``.
        data: a JSON object (kind ``data``: files, replies, cards…).
        client_msg_id: the client's id for this message; sending again with the
            same id returns the first ack and writes nothing.
        mentions: usernames mentioned in a group message (``@name`` in the
            text is found too); only members are kept.

    Raises:
        InvalidInput: empty or too long text, bad data, bad ids.
        Forbidden: the sender may not post here (not a member, blocked…).
        NotFound: the other user of a direct conversation does not exist.
    """
    conversation = names.conversation(conversation)
    body = _content(ctx, text, data)
    client_id = _client_id(sender, client_msg_id)
    if names.is_group(conversation):
        gid = names.group_of(conversation)
        await access.require_member(ctx, sender, gid)
        recipients, read_fanout = await audience(ctx, conversation)
        found = _mentions(text, mentions)
        if found:
            members = set(recipients)
            body["mentions"] = [name for name in found if name in members]
    else:
        recipient = access.dm_peer(sender, conversation)
        await access.check_dm_allowed(ctx, sender, recipient)
        await _remember_dm(ctx, conversation, (sender, recipient))
        recipients, read_fanout = [sender, recipient], False
    now = ctx.now()
    body.update({"id": new_message_id(now), "from": sender, "ts": now})
    entry, replayed = await append_to_conversation(
        ctx, conversation, body, recipients, client_id=client_id, read_fanout=read_fanout
    )
    return Ack(conversation, entry.seq, entry.message["id"], entry.message["ts"], replayed)


async def recall(ctx: Context, user: str, conversation: str, seq: int) -> Ack:
    """Withdraw a message: its content is erased from history and every member's
    devices get a ``recall`` entry.

    The sender may recall within ``recall_window``; a group's owner and admins
    may recall any message of the group at any time. Recalling a recalled
    message changes nothing and returns the first recall's ack.

    Raises:
        NotFound: no such message (or not readable by the user).
        Forbidden: not the sender (nor a group admin), or the window has passed.
    """
    entry = await _own_or_admin_target(ctx, user, conversation, seq, ctx.settings.recall_window)
    if entry.message.get("recalled"):
        return Ack(conversation, seq, entry.message["id"], entry.message["ts"], True)
    now = ctx.now()
    await ctx.store.update(
        conversation, seq, {"recalled": True, "text": "", "data": None, "mentions": None}
    )
    event_id = new_message_id(now)
    event = {"kind": "recall", "target": seq, "id": event_id, "from": user, "ts": now}
    recipients, read_fanout = await audience(ctx, conversation)
    written, _ = await append_to_conversation(
        ctx, conversation, event, recipients, read_fanout=read_fanout
    )
    return Ack(conversation, written.seq, event_id, now)


async def edit(ctx: Context, user: str, conversation: str, seq: int, text: str) -> Ack:
    """Replace the text of one's own message within ``edit_window``; every
    member's devices get an ``edit`` entry with the new text.

    Raises:
        NotFound: no such message. Forbidden: not the sender, window passed,
        or the message was recalled. InvalidInput: bad text.
    """
    new_text = _text(ctx, text)
    entry = await _own_or_admin_target(
        ctx, user, conversation, seq, ctx.settings.edit_window, admins=False
    )
    if entry.message.get("recalled"):
        raise Forbidden("a recalled message cannot be edited")
    now = ctx.now()
    await ctx.store.update(
        conversation, seq, {"text": new_text, "edited_at": now}, check=_not_recalled
    )
    event_id = new_message_id(now)
    event = {
        "kind": "edit",
        "target": seq,
        "text": new_text,
        "id": event_id,
        "from": user,
        "ts": now,
    }
    recipients, read_fanout = await audience(ctx, conversation)
    written, _ = await append_to_conversation(
        ctx, conversation, event, recipients, read_fanout=read_fanout
    )
    return Ack(conversation, written.seq, event_id, now)


def _not_recalled(message: dict[str, Any]) -> None:
    # Checked inside the write: a recall that lands between the read and the
    # edit must win, or the edit would bring the erased text back.
    if message.get("recalled"):
        raise Forbidden("a recalled message cannot be edited")


async def _own_or_admin_target(
    ctx: Context, user: str, conversation: str, seq: int, window: float, *, admins: bool = True
) -> Entry:
    conversation = names.conversation(conversation)
    visible = await access.read_window(ctx, user, conversation)
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise InvalidInput("seq must be an integer", field="seq")
    entry = await ctx.store.get(conversation, seq)
    if (
        entry is None
        or entry.message.get("kind") not in CONTENT_KINDS
        or visible.clip(seq - 1, seq + 1) is None
    ):
        raise NotFound(f"no message {seq} in {conversation}")
    if entry.message.get("from") == user:
        if names.is_group(conversation):
            # Only current members change what the group sees.
            await access.require_member(ctx, user, names.group_of(conversation))
        if ctx.now() - entry.message["ts"] <= window:
            return entry
        raise Forbidden("the time to change this message has passed")
    if admins and names.is_group(conversation):
        record = await access.membership(ctx, user, names.group_of(conversation))
        if record and record.get("active") and record.get("role") in ("owner", "admin"):
            return entry
    raise Forbidden("only the sender can change this message")


async def _remember_dm(ctx: Context, conversation: str, users: tuple[str, str]) -> None:
    """Record the conversation in both users' conversation lists, once."""
    if conversation in ctx.known_dms:
        return
    for user in set(users):
        if await ctx.store.get_meta(f"conv:{user}:{conversation}") is None:
            await ctx.store.put_meta(f"conv:{user}:{conversation}", {"since": ctx.now()})
    remember(ctx.known_dms, conversation)


def _text(ctx: Context, text: object) -> str:
    if not isinstance(text, str):
        raise InvalidInput("text must be a string", field="text")
    if not text.strip():
        raise InvalidInput("text is empty", field="text")
    if len(text) > ctx.settings.max_text_chars:
        raise InvalidInput(
            f"text is {len(text)} characters; the limit is {ctx.settings.max_text_chars}",
            field="text",
            limit=ctx.settings.max_text_chars,
        )
    return text


def _content(ctx: Context, text: object, data: object) -> dict[str, Any]:
    if data is None:
        return {"kind": "text", "text": _text(ctx, text)}
    if not isinstance(data, dict):
        raise InvalidInput("data must be a JSON object", field="data")
    body: dict[str, Any] = {"kind": "data", "data": data}
    if text is not None:
        body["text"] = _text(ctx, text)
    return body


def _client_id(sender: str, client_msg_id: object) -> str | None:
    if client_msg_id is None:
        return None
    if not isinstance(client_msg_id, str) or not 1 <= len(client_msg_id) <= 64:
        raise InvalidInput("client_msg_id must be a string of 1 to 64 characters")
    # Scoped by sender: two users' clients may pick the same id.
    return f"{sender}/{client_msg_id}"


def _mentions(text: str | None, mentions: object) -> list[str]:
    found: list[str] = []
    if mentions is not None:
        if not isinstance(mentions, list) or not all(isinstance(m, str) for m in mentions):
            raise InvalidInput("mentions must be a list of usernames", field="mentions")
        found += [m.lower() for m in mentions]
    if text:
        found += MENTION_RE.findall(text.lower())
    return list(dict.fromkeys(found))
