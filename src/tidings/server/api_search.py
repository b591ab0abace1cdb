"""HTTP routes: search for users, groups and messages (``tidings.im.search``)."""

from __future__ import annotations

import math
from typing import Any

from ..errors import InvalidInput
from ..im import search
from .routes import Call, Param, Route
from .schemas import BOOL, INT, NULLABLE_STRING, NUMBER, STRING, array, obj, ref

USER_HIT = obj(
    ("username", "display_name", "signature"),
    username=STRING,
    display_name=STRING,
    signature=STRING,
)
# A Group, and whether the searching user is a member of it.
GROUP_HIT = {"allOf": [ref("Group"), obj(("member",), member=BOOL)]}
MESSAGE_HIT = obj(
    ("conversation", "seq", "ts", "snippet"),
    conversation=STRING,
    seq=INT,
    ts=NUMBER,
    snippet=array(obj(("text", "match"), text=STRING, match=BOOL)),
    **{"from": NULLABLE_STRING},
)
MESSAGE_HITS = obj(("hits", "cursor"), hits=array(MESSAGE_HIT), cursor=NULLABLE_STRING)

QUERY = Param("q", "string", "the text to find (required; any text, no query syntax)")
LIMIT = Param("limit", "integer", "results per page, 1 to 100 (default 20)")


def _q(call: Call) -> str:
    query = call.query.get("q")
    if query is None or not query.strip():
        raise InvalidInput("q is required: the text to search for", field="q")
    return str(query)


def _time(call: Call, name: str) -> float | None:
    raw = call.query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidInput(f"{name} must be a time in Unix seconds", field=name)
    return value


async def users(call: Call) -> list[dict[str, Any]]:
    return await search.users(call.state.ctx, _q(call), limit=call.query.get("limit", 20))


async def groups(call: Call) -> list[dict[str, Any]]:
    return await search.groups(
        call.state.ctx, call.user, _q(call), limit=call.query.get("limit", 20)
    )


async def messages(call: Call) -> dict[str, Any]:
    q = call.query
    return await search.messages(
        call.state.ctx,
        call.user,
        _q(call),
        conversation=q.get("conversation"),
        sender=q.get("from"),
        after=_time(call, "after"),
        before=_time(call, "before"),
        order=q.get("order", "newest"),
        cursor=q.get("cursor"),
        limit=q.get("limit", 20),
    )


ROUTES = [
    Route(
        "GET",
        "/api/search/users",
        "Users whose username, display name or signature contains q (prefix matches first)",
        users,
        tag="search",
        query=(QUERY, LIMIT),
        reply=array(USER_HIT),
    ),
    Route(
        "GET",
        "/api/search/groups",
        "Groups whose id, name, type or description contains q: open groups and your own",
        groups,
        tag="search",
        query=(QUERY, LIMIT),
        reply=array(GROUP_HIT),
    ),
    Route(
        "GET",
        "/api/search/messages",
        "Messages you may read that match q, newest first (or by relevance), paged",
        messages,
        tag="search",
        query=(
            QUERY,
            Param("conversation", "string", "search this conversation only"),
            Param("from", "string", "only messages from this username"),
            Param("after", "string", "only messages sent at or after this Unix time (seconds)"),
            Param("before", "string", "only messages sent before this Unix time (seconds)"),
            Param("order", "string", "'newest' (default) or 'relevance'"),
            Param("cursor", "string", "the cursor of the previous page"),
            LIMIT,
        ),
        reply=MESSAGE_HITS,
    ),
]
