"""What each WebSocket operation does, through the IM layer's actions and checks.

Each handler takes the server state, the connection and the parsed operation,
and queues its reply on the connection. Errors propagate as ``TidingsError``;
the socket layer turns them into ``error`` frames.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..im import access, contacts, messaging, names, sync
from . import protocol as p
from .hub import Connection
from .state import ServerState


async def send(state: ServerState, conn: Connection, op: p.Send) -> None:
    ack = await state.send_message(
        conn.user,
        op.conversation,
        text=op.text,
        data=op.data,
        client_msg_id=op.client_msg_id,
        mentions=op.mentions,
    )
    reply = p.frame("ack", op.ref, client_msg_id=op.client_msg_id, **ack.to_dict())
    state.hub.send(conn, reply)


async def sync_inbox(state: ServerState, conn: Connection, op: p.Sync) -> None:
    assert conn.device is not None
    result = await sync.sync(state.ctx, conn.user, conn.device, after=op.after, limit=op.limit)
    conn.session.synced(result.cursor)
    state.hub.send(conn, p.frame("synced", op.ref, **result.to_dict()))


async def confirm(state: ServerState, conn: Connection, op: p.Confirm) -> None:
    assert conn.device is not None
    stored = await sync.confirm(state.ctx, conn.user, conn.device, op.cursor)
    state.hub.send(conn, p.frame("confirmed", op.ref, cursor=stored))


async def read(state: ServerState, conn: Connection, op: p.Read) -> None:
    seq = await sync.mark_read(state.ctx, conn.user, op.conversation, op.seq)
    conversation = names.conversation(op.conversation)
    state.hub.send(conn, p.frame("marked", op.ref, conversation=conversation, seq=seq))


async def typing(state: ServerState, conn: Connection, op: p.Typing) -> None:
    """Relay "typing" to the conversation's other online members; throttled,
    checked like a send, never stored."""
    conversation = names.conversation(op.conversation)
    if not conn.session.may_type(conversation, state.clock()):
        return
    data = p.frame("typing", conversation=conversation, user=conn.user)
    for user in await _typing_audience(state, conn.user, conversation):
        if user != conn.user:
            state.hub.send_to_user(user, data, ephemeral=True)


async def _typing_audience(state: ServerState, user: str, conversation: str) -> list[str]:
    ctx = state.ctx
    if names.is_group(conversation):
        await access.require_member(ctx, user, names.group_of(conversation))
        members, read_fanout = await messaging.audience(ctx, conversation)
        # Typing in a large group would be a storm of frames nobody reads.
        return [] if read_fanout else [m for m in members if state.hub.online(m)]
    other = access.dm_peer(user, conversation)
    if not state.hub.online(other):
        return []
    await access.check_dm_allowed(ctx, user, other)
    return [other]


async def presence(state: ServerState, conn: Connection, op: p.Presence) -> None:
    """Report which of the asked users (default: all contacts) are online; only
    accepted contacts are reported."""
    friends = await accepted_contacts(state, conn.user)
    asked = friends if op.users is None else [u.lower() for u in op.users if u.lower() in friends]
    users = {user: state.hub.online(user) for user in asked}
    state.hub.send(conn, p.frame("presence_state", op.ref, users=users))


async def ping(state: ServerState, conn: Connection, op: p.Ping) -> None:
    state.hub.send(conn, p.frame("pong", op.ref, ts=state.ctx.now()))


async def accepted_contacts(state: ServerState, user: str) -> list[str]:
    return [
        c["username"]
        for c in await contacts.contacts(state.ctx, user)
        if c.get("state") == "accepted"
    ]


async def announce_presence(state: ServerState, user: str, online: bool) -> None:
    """Tell the user's online contacts that the user came online or went offline."""
    data = p.frame("presence", user=user, online=online)
    for friend in await accepted_contacts(state, user):
        state.hub.send_to_user(friend, data, ephemeral=True)


Handler = Callable[[ServerState, Connection, Any], Awaitable[None]]
HANDLERS: dict[type[Any], Handler] = {
    p.Send: send,
    p.Sync: sync_inbox,
    p.Confirm: confirm,
    p.Read: read,
    p.Typing: typing,
    p.Presence: presence,
    p.Ping: ping,
}
