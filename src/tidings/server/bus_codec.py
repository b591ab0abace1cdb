"""How deliveries travel on the bus: subjects and compact orjson payloads.

Each payload is an array whose first item says what it is: ``"i"`` an inbox
delivery (with its entries whole, so the receiving node pushes without reading
the database), ``"g"`` a read-fan-out group head, ``"r"`` a revoked session,
``"f"`` an ephemeral frame (typing, presence) for one user.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..im import Delivery, GroupAdvanced, InboxAdvanced, SessionRevoked
from ..timeline import Entry

USER_PREFIX = "tidings.user."
GROUP_PREFIX = "tidings.group."
GROUPS = "tidings.group.>"
PRESENCE = "tidings.presence"
# A group head names the members to push to; a huge group's list is split over
# several messages of at most this many names (~200 KB), well under NATS's
# default 1 MB payload limit.
GROUP_HEAD_MEMBERS = 10_000


def user_subject(user: str) -> str:
    # Usernames may hold "." (the NATS token separator) but never "~".
    return USER_PREFIX + user.replace(".", "~")


def group_subject(conversation: str) -> str:
    return GROUP_PREFIX + conversation.removeprefix("group:").replace(".", "~")


# -- encoding: compact orjson arrays, one letter of kind first --------------------


def encode(delivery: Delivery) -> list[tuple[str, bytes]]:
    """The subjects and payloads of a delivery (one message, or several for the
    head of a very large group). An inbox delivery carries its entries whole,
    so the receiving node pushes without reading the database."""
    if isinstance(delivery, InboxAdvanced):
        entries = [
            [e.seq, e.message, e.created_at, e.client_id, list(e.ref) if e.ref else None]
            for e in delivery.entries
        ]
        return [(user_subject(delivery.user), orjson.dumps(["i", delivery.user, entries]))]
    if isinstance(delivery, GroupAdvanced):
        subject = group_subject(delivery.conversation)
        members = list(delivery.members) or [""]
        return [
            (
                subject,
                orjson.dumps(["g", delivery.conversation, delivery.seq, [m for m in chunk if m]]),
            )
            for chunk in (
                members[start : start + GROUP_HEAD_MEMBERS]
                for start in range(0, len(members), GROUP_HEAD_MEMBERS)
            )
        ]
    body = ["r", delivery.user, delivery.device]
    return [(user_subject(delivery.user), orjson.dumps(body))]


def encode_frame(user: str, frame: bytes) -> tuple[str, bytes]:
    return user_subject(user), b'["f",%b,%b]' % (orjson.dumps(user), frame)


def decode(payload: bytes) -> Delivery | tuple[str, bytes]:
    """A delivery, or ``(user, frame)`` for an ephemeral frame.

    Raises:
        ValueError: not a bus payload.
    """
    value: Any = orjson.loads(payload)
    kind = value[0]
    if kind == "i":
        inbox = "inbox:" + value[1]
        entries = tuple(
            Entry(inbox, seq, message, created, cid, (ref[0], ref[1]) if ref else None)
            for seq, message, created, cid, ref in value[2]
        )
        return InboxAdvanced(value[1], entries)
    if kind == "g":
        return GroupAdvanced(value[1], value[2], tuple(value[3]))
    if kind == "r":
        return SessionRevoked(value[1], value[2])
    if kind == "f":
        return value[1], orjson.dumps(value[2])
    raise ValueError(f"unknown bus payload kind {kind!r}")
