"""What the IM layer tells the outside world after a commit.

The IM layer never pushes anything itself: each action, once its commit is
done, hands :class:`Delivery` values to a ``publish`` callback (the server's
push hub, or a bus to other nodes). Push is an optimisation; a device that
misses one finds the same thing by syncing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..timeline import Entry


@dataclass(frozen=True, slots=True)
class InboxAdvanced:
    """New entries were appended to ``user``'s inbox (their devices should get them)."""

    user: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class GroupAdvanced:
    """A read-fan-out group's history reached ``seq``: its online members should pull."""

    conversation: str
    seq: int
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SessionRevoked:
    """A device was signed out: close its live connections."""

    user: str
    device: str


Delivery = InboxAdvanced | GroupAdvanced | SessionRevoked
Publish = Callable[[Delivery], None]


def message_view(conversation: str, seq: int, body: dict[str, Any]) -> dict[str, Any]:
    """A message as clients see it: its place (conversation, seq) and its fields."""
    return {"conversation": conversation, "seq": seq, **body}


def inbox_event(entry: Entry) -> dict[str, Any]:
    """The client-facing form of one inbox entry.

    A message fanned out to the inbox refers to its history entry; the event
    carries the message with that conversation and seq. Any other event is its
    stored fields.
    """
    if entry.ref is not None:
        conversation, seq = entry.ref
        return {
            "inbox_seq": entry.seq,
            "type": "message",
            "message": message_view(conversation, seq, entry.message),
        }
    return {"inbox_seq": entry.seq, **entry.message}


def history_message(entry: Entry) -> dict[str, Any]:
    """The client-facing form of one history entry."""
    return message_view(entry.timeline_id, entry.seq, entry.message)
