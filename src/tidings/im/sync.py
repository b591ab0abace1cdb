"""Reading: per-device inbox sync, conversation history, read state, and the
conversation list."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInput
from ..timeline import MAX_SCAN_LIMIT, Direction
from . import access, groups, names
from .context import Context
from .events import InboxAdvanced, history_message, inbox_event, message_view
from .messaging import CONTENT_KINDS

# Unread counts are exact up to this many; past it, clients show "999+".
UNREAD_CAP = 999


@dataclass(frozen=True, slots=True)
class SyncResult:
    """One page of a device's inbox after its cursor.

    ``cursor`` is the inbox seq to confirm once the events are processed, and
    to sync from next. ``heads`` maps each read-fan-out group of the user to its
    last seq: the device pulls those groups' history from its own position.
    ``reset`` says the cursor is older than the inbox keeps: the device must
    re-fetch each conversation's history, then continue from ``cursor``.
    """

    events: list[dict[str, Any]]
    cursor: int
    has_more: bool
    heads: dict[str, int] = field(default_factory=dict)
    reset: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "cursor": self.cursor,
            "has_more": self.has_more,
            "heads": self.heads,
            "reset": self.reset,
        }


def _check_count(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name} must be an integer from {low} to {high}", field=name)
    return value


async def sync(
    ctx: Context, user: str, device: str, *, after: int | None = None, limit: int = 200
) -> SyncResult:
    """The inbox events after ``after`` (default: the device's stored cursor)."""
    limit = _check_count(limit, "limit", 1, 1000)
    if after is None:
        record = await ctx.store.get_meta(f"device:{user}:{device}") or {}
        after = int(record.get("cursor", 0))
    after = _check_count(after, "after", 0, 2**62)
    inbox = names.inbox(user)
    page = await ctx.store.scan(inbox, after=after, limit=limit)
    reset = False
    if not page.entries or page.entries[0].seq != after + 1:
        # A hole right after the cursor: expired entries, nothing new, or a
        # cursor past the head (a restored database, a confused client).
        head = await ctx.store.last_seq(inbox)
        oldest = await ctx.store.oldest_seq(inbox)
        reset = (after + 1 < oldest and after < head) or after > head
    cursor = page.entries[-1].seq if page.entries else max(after, 0)
    if reset and not page.entries:
        cursor = await ctx.store.last_seq(inbox)
    return SyncResult(
        await _current(ctx, [inbox_event(entry) for entry in page.entries]),
        cursor,
        page.has_more,
        await read_fanout_heads(ctx, user),
        reset,
    )


async def _current(ctx: Context, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Show each synced message as its history entry is now.

    An inbox entry keeps the message as it was sent; a message recalled (or
    edited) since must not be served with its old content. One scan per
    conversation of the page reads the current versions.
    """
    wanted: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event["type"] == "message":
            wanted.setdefault(event["message"]["conversation"], []).append(event)
    for conversation, mentioned in wanted.items():
        seqs = [event["message"]["seq"] for event in mentioned]
        low, high = min(seqs), max(seqs)
        current: dict[int, dict[str, Any]] = {}
        after = low - 1
        while after < high:
            page = await ctx.store.scan(
                conversation, after=after, before=high + 1, limit=MAX_SCAN_LIMIT
            )
            current.update((entry.seq, entry.message) for entry in page.entries)
            if not page.has_more:
                break
            after = page.entries[-1].seq
        for event in mentioned:
            seq = event["message"]["seq"]
            if seq in current:
                event["message"] = message_view(conversation, seq, current[seq])
    return events


async def confirm(ctx: Context, user: str, device: str, cursor: int) -> int:
    """Store the device's cursor (it only moves forward). Returns the stored cursor."""
    cursor = _check_count(cursor, "cursor", 0, 2**62)
    head = await ctx.store.last_seq(names.inbox(user))
    key = f"device:{user}:{device}"
    record = await ctx.store.get_meta(key)
    if record is None:
        raise InvalidInput("unknown device")
    stored = max(int(record.get("cursor", 0)), min(cursor, head))
    await ctx.store.update_meta(key, {"cursor": stored})
    return stored


async def read_fanout_heads(ctx: Context, user: str) -> dict[str, int]:
    """Last seq of each of the user's groups that use read fan-out."""
    big = [
        group["conversation"]
        for group in await groups.groups_of(ctx, user)
        if group.get("member_count", 0) > ctx.settings.write_fanout_max
    ]
    return await ctx.store.heads(big) if big else {}


async def history(
    ctx: Context,
    user: str,
    conversation: str,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
    direction: str = "backward",
) -> tuple[list[dict[str, Any]], bool]:
    """A page of a conversation's history the user may read.

    Backward (newest first) by default: pass the lowest seq seen as the next
    ``before``. Forward (``after``, oldest first) is how a device catches up.
    Returns the messages and whether more remain in that direction.
    """
    conversation = names.conversation(conversation)
    limit = _check_count(limit, "limit", 1, 200)
    window = await access.read_window(ctx, user, conversation)
    bounds = window.clip(after, before)
    if bounds is None:
        return [], False
    if direction not in ("forward", "backward"):
        raise InvalidInput("direction is 'forward' or 'backward'", field="direction")
    page = await ctx.store.scan(
        conversation, after=bounds[0], before=bounds[1], limit=limit, direction=Direction(direction)
    )
    return [history_message(entry) for entry in page.entries], page.has_more


async def mark_read(ctx: Context, user: str, conversation: str, seq: int) -> int:
    """Move the user's read mark forward to ``seq``; every device of the user
    gets a ``read`` event. Returns the mark (unchanged when ``seq`` is lower)."""
    conversation = names.conversation(conversation)
    seq = _check_count(seq, "seq", 0, 2**62)
    window = await access.read_window(ctx, user, conversation)
    head = await ctx.store.last_seq(conversation)
    seq = min(seq, head, window.last if window.last is not None else head)
    key = f"read:{user}:{conversation}"
    current = int((await ctx.store.get_meta(key) or {}).get("seq", 0))
    if seq <= current:
        return current
    # Raised, not set: a device marking further at the same moment, on this
    # node or another, is never moved back.
    mark = int((await ctx.store.update_meta(key, {}, highest={"seq": seq}))["seq"])
    if mark > seq:
        return mark  # that device's event goes out
    entry = await ctx.store.append(
        names.inbox(user), {"type": "read", "conversation": conversation, "seq": seq}
    )
    ctx.publish(InboxAdvanced(user, (entry,)))
    return seq


async def conversations(ctx: Context, user: str) -> list[dict[str, Any]]:
    """The user's conversations, most recently active first, each with its last
    message, read mark and unread count (messages after the mark that others
    sent, counted up to 999)."""
    found: dict[str, dict[str, Any]] = {}
    for record_id, _ in await ctx.records(f"conv:{user}:"):
        conversation = record_id.removeprefix(f"conv:{user}:")
        found[conversation] = {"conversation": conversation, "type": "direct"}
    for group in await groups.groups_of(ctx, user):
        found[group["conversation"]] = {
            "conversation": group["conversation"],
            "type": "group",
            "name": group.get("name"),
        }
    marks = {
        record_id.removeprefix(f"read:{user}:"): int(record["seq"])
        for record_id, record in await ctx.records(f"read:{user}:")
    }
    heads = await ctx.store.heads(list(found))
    for conversation, summary in found.items():
        read_seq = marks.get(conversation, 0)
        summary["last_seq"] = heads[conversation]
        summary["read_seq"] = read_seq
        summary.update(await _activity(ctx, user, conversation, read_seq))
    return sorted(found.values(), key=lambda c: c.get("last_ts") or 0, reverse=True)


async def _activity(ctx: Context, user: str, conversation: str, read_seq: int) -> dict[str, Any]:
    last_message = None
    last_ts = None
    page = await ctx.store.scan(conversation, limit=20, direction=Direction.BACKWARD)
    for entry in page.entries:
        last_ts = last_ts or entry.message.get("ts")
        if entry.message.get("kind") in (*CONTENT_KINDS, "system"):
            last_message = history_message(entry)
            break
    unread = 0
    if page.entries and page.entries[0].seq > read_seq:
        after = read_seq
        if names.is_group(conversation):
            window = await access.read_window(ctx, user, conversation)
            after = max(read_seq, window.first - 1)
        unread_page = await ctx.store.scan(conversation, after=after, limit=UNREAD_CAP)
        unread = sum(
            1
            for entry in unread_page.entries
            if entry.message.get("kind") in CONTENT_KINDS and entry.message.get("from") != user
        )
    return {"last_message": last_message, "last_ts": last_ts, "unread": unread}
