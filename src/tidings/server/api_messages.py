"""HTTP routes: conversations, history, sending, read marks, inbox sync."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput
from ..im import messaging, sync
from .routes import Call, Param, Route
from .schemas import ANY_OBJECT, BOOL, INT, SEQ, STRING, USERNAMES, array, obj, ref


def _conversation(call: Call) -> str:
    return call.path("conversation")


def _seq(call: Call) -> int:
    try:
        return int(call.path("seq"))
    except ValueError:
        raise InvalidInput("seq must be an integer", field="seq") from None


async def conversation_list(call: Call) -> list[dict[str, Any]]:
    return await sync.conversations(call.state.ctx, call.user)


async def history(call: Call) -> dict[str, Any]:
    q = call.query
    messages, more = await sync.history(
        call.state.ctx,
        call.user,
        _conversation(call),
        before=q.get("before"),
        after=q.get("after"),
        limit=q.get("limit", 50),
        direction=q.get("direction", "backward"),
    )
    return {"messages": messages, "has_more": more}


async def send(call: Call) -> dict[str, Any]:
    body = call.body
    ack = await call.state.send_message(
        call.user,
        _conversation(call),
        text=body.get("text"),
        data=body.get("data"),
        client_msg_id=body.get("client_msg_id"),
        mentions=body.get("mentions"),
    )
    return {**ack.to_dict(), "client_msg_id": body.get("client_msg_id")}


async def recall(call: Call) -> dict[str, Any]:
    ack = await messaging.recall(call.state.ctx, call.user, _conversation(call), _seq(call))
    return ack.to_dict()


async def edit(call: Call) -> dict[str, Any]:
    ctx = call.state.ctx
    ack = await messaging.edit(ctx, call.user, _conversation(call), _seq(call), call.body["text"])
    return ack.to_dict()


async def mark_read(call: Call) -> dict[str, Any]:
    seq = await sync.mark_read(call.state.ctx, call.user, _conversation(call), call.body["seq"])
    return {"conversation": _conversation(call), "read_seq": seq}


async def inbox_sync(call: Call) -> dict[str, Any]:
    assert call.session is not None
    result = await sync.sync(
        call.state.ctx,
        call.user,
        call.session.device,
        after=call.query.get("after"),
        limit=call.query.get("limit", 200),
    )
    return result.to_dict()


async def confirm(call: Call) -> dict[str, Any]:
    assert call.session is not None
    stored = await sync.confirm(call.state.ctx, call.user, call.session.device, call.body["cursor"])
    return {"cursor": stored}


CONVERSATION_ROUTES = [
    Route(
        "GET",
        "/api/conversations",
        "Your conversations, most recent first, with last message and unread count",
        conversation_list,
        tag="messages",
        reply=array(ref("Conversation")),
    ),
    Route(
        "GET",
        "/api/conversations/{conversation}/messages",
        "A page of history you may read (newest first by default)",
        history,
        tag="messages",
        query=(
            Param("before", "integer", "only seqs below this (backward paging)"),
            Param("after", "integer", "only seqs above this (forward paging)"),
            Param("limit", "integer", "page size, 1 to 200 (default 50)"),
            Param("direction", "string", "'backward' (default) or 'forward'"),
        ),
        reply=obj(("messages", "has_more"), messages=array(ref("Message")), has_more=BOOL),
    ),
    Route(
        "POST",
        "/api/conversations/{conversation}/messages",
        "Send a message; acked after commit, idempotent by client_msg_id",
        send,
        tag="messages",
        reply=ref("Ack"),
        body=obj((), True, text=STRING, data=ANY_OBJECT, client_msg_id=STRING, mentions=USERNAMES),
    ),
    Route(
        "POST",
        "/api/conversations/{conversation}/messages/{seq}/recall",
        "Recall a message (sender within the window; group admins any time)",
        recall,
        tag="messages",
        reply=ref("Ack"),
    ),
    Route(
        "PATCH",
        "/api/conversations/{conversation}/messages/{seq}",
        "Edit the text of your message",
        edit,
        tag="messages",
        reply=ref("Ack"),
        body=obj(("text",), True, text=STRING),
    ),
    Route(
        "PUT",
        "/api/conversations/{conversation}/read",
        "Move your read mark forward (all your devices get a read event)",
        mark_read,
        tag="messages",
        body=obj(("seq",), True, seq=SEQ),
        reply=obj(("conversation", "read_seq"), conversation=STRING, read_seq=INT),
    ),
]

SYNC_ROUTES = [
    Route(
        "GET",
        "/api/sync",
        "This device's inbox events after a cursor",
        inbox_sync,
        tag="sync",
        query=(
            Param("after", "integer", "inbox seq to read after (default: the stored cursor)"),
            Param("limit", "integer", "page size, 1 to 1000 (default 200)"),
        ),
        reply=ref("Sync"),
    ),
    Route(
        "POST",
        "/api/sync/confirm",
        "Store this device's inbox cursor (only moves forward)",
        confirm,
        tag="sync",
        body=obj(("cursor",), True, cursor=SEQ),
        reply=obj(("cursor",), cursor=INT),
    ),
]

ROUTES = CONVERSATION_ROUTES + SYNC_ROUTES
