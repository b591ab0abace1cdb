"""Search: users, groups and messages, limited to what the searching user may see.

The index lives in the timeline store (``SEARCH`` says what it indexes: the
text of content messages of conversations, user and group records); the rules
live here. Message search covers the user's direct conversations whole and
each group from the seq they joined to the seq they left (``access``), passed
to the store as scopes; a message outside them is never a candidate.
Recalled messages have no text, so they are not in the index; edited ones are
indexed by their new text.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput
from ..timeline import Hit, Scope, SearchConfig
from ..timeline.search import MAX_SEARCH_LIMIT
from . import access, names
from .context import Context
from .messaging import CONTENT_KINDS

# What the IM layer asks the store to index. "from" is kept beside the text to
# filter by sender; user records by name, display name and signature, group
# records by id, name, type and description.
SEARCH = SearchConfig(
    kinds=("dm", "group"),
    fields=("text",),
    when={"kind": CONTENT_KINDS},
    facet="from",
    meta={"user": ("display_name", "signature"), "group": ("name", "type", "description")},
)
# Group search reads this many candidates and drops the closed groups the user
# is not in; a page may then hold fewer groups than asked for.
GROUP_CANDIDATES = MAX_SEARCH_LIMIT


def _limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SEARCH_LIMIT:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_SEARCH_LIMIT}", field="limit")
    return value


async def users(ctx: Context, query: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """Users whose username, display name or signature contains ``query``
    (prefix matches first). Profiles are public, so anyone may search them."""
    found = await ctx.store.search_meta("user", query, limit=_limit(limit))
    return [
        {
            "username": record_id.removeprefix("user:"),
            "display_name": record.get("display_name", ""),
            "signature": record.get("signature", ""),
        }
        for record_id, record in found
    ]


async def groups(ctx: Context, user: str, query: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """Groups whose id, name, type or description contains ``query``: open
    groups, and closed groups the user is a member of. ``member`` says whether
    the user is in the group (an open group they are not in can be joined)."""
    limit = _limit(limit)
    found = []
    for record_id, record in await ctx.store.search_meta("group", query, limit=GROUP_CANDIDATES):
        gid = record_id.removeprefix("group:")
        mine = await access.membership(ctx, user, gid)
        member = bool(mine and mine.get("active"))
        if record.get("type") != "open" and not member:
            continue
        found.append({"id": gid, "conversation": names.group(gid), **record, "member": member})
        if len(found) == limit:
            break
    return found


async def readable(ctx: Context, user: str) -> list[Scope]:
    """Every conversation the user may read, with the seqs they may read."""
    scopes = [
        Scope(record_id.removeprefix(f"conv:{user}:"))
        for record_id, _ in await ctx.records(f"conv:{user}:")
    ]
    for record_id, record in await ctx.records(f"membership:{user}:"):
        window = access.membership_window(record)
        if window is not None:
            gid = record_id.removeprefix(f"membership:{user}:")
            scopes.append(Scope(names.group(gid), window.first, window.last))
    return scopes


async def messages(
    ctx: Context,
    user: str,
    query: str,
    *,
    conversation: str | None = None,
    sender: str | None = None,
    after: float | None = None,
    before: float | None = None,
    order: str = "newest",
    cursor: str | None = None,
    limit: int = 20,
) -> dict[str, Any]:
    """Messages the user may read whose text matches ``query``.

    Args:
        conversation: search this conversation only.
        sender: only messages from this username.
        after, before: only messages sent at ``after <= ts < before`` (Unix seconds).
        order: "newest" or "relevance".
        cursor: the previous page's ``cursor``.

    Returns:
        ``{"hits": [...], "cursor": str | None}``; each hit names the
        conversation and seq (to open the conversation there), the sender,
        the time and a snippet of ``{"text", "match"}`` pieces.

    Raises:
        Forbidden: ``conversation`` is not one the user may read.
        InvalidInput: a bad filter, order, limit or cursor.
    """
    if conversation is not None:
        conversation = names.conversation(conversation)
        window = await access.read_window(ctx, user, conversation)
        scopes = [Scope(conversation, window.first, window.last)]
    else:
        scopes = await readable(ctx, user)
    if sender is not None:
        sender = names.username(sender)
    page = await ctx.store.search(
        query,
        scopes,
        after=after,
        before=before,
        facet=sender,
        order=order,
        cursor=cursor,
        limit=_limit(limit),
    )
    return {"hits": [_hit(hit) for hit in page.hits], "cursor": page.cursor}


def _hit(hit: Hit) -> dict[str, Any]:
    return {
        "conversation": hit.timeline_id,
        "seq": hit.seq,
        "from": hit.facet,
        "ts": hit.created_at,
        "snippet": [{"text": text, "match": match} for text, match in hit.snippet],
    }
