"""The scenarios of ``tidings bench load``: who exists, who is online, who sends
what where. A :class:`Scenario` is plain data, handed to every client process.

- ``dm``: N users in N/2 pairs; each sends to its pair's conversation.
- ``group``: one group of K online members, S of whom send.
- ``offline``: S senders write M messages in all to one user who is offline;
  then that user connects and syncs everything, timed.
- ``idle``: C users connect and do nothing: the server's memory per socket.
- ``mixed``: many users, direct pairs and groups of several sizes (one above
  the write fan-out limit, so read fan-out is exercised), sending at a human
  pace with typing, read marks and reconnects.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from typing import Any

from ..im.names import dm

SCENARIOS = ("dm", "group", "offline", "idle", "mixed")
# Group sizes of the mixed scenario: small chats, a team, a department, and one
# past the default write fan-out limit (200), so read fan-out is in the blend.
MIXED_GROUP_SIZES = (3, 5, 8, 20, 50, 250)
# Each mixed user also talks directly with this many others.
MIXED_DM_PARTNERS = 2
# Messages a second per mixed user: people write far slower than bots.
MIXED_RATE = 0.5


@dataclass(frozen=True, slots=True)
class Scenario:
    """One load run as data.

    ``sends`` maps each sender to the conversations it writes to (in turn).
    ``members`` maps each conversation to the users who receive it (the sender
    included: its inbox gets its own messages too). ``late`` users connect
    only after the sending is over (and then sync). ``rate`` is messages a
    second per sender (None: as fast as acks allow, ``window`` sends in flight);
    sending lasts ``duration`` seconds, or ``messages`` per sender when set.
    """

    name: str
    users: tuple[str, ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    sends: dict[str, tuple[str, ...]] = field(default_factory=dict)
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)
    late: tuple[str, ...] = ()
    rate: float | None = None
    window: int = 8
    duration: float = 10.0
    messages: int | None = None
    text_bytes: int = 64
    # Mixed only: chance per send of a typing frame first, and of a read mark
    # after it; reconnects per user per second.
    typing: float = 0.0
    reads: float = 0.0
    reconnects: float = 0.0

    @property
    def online(self) -> tuple[str, ...]:
        late = set(self.late)
        return tuple(u for u in self.users if u not in late)


@dataclass(frozen=True, slots=True)
class Options:
    """The command-line knobs that shape a scenario."""

    users: int = 1000
    members: int = 500
    senders: int = 10
    messages: int = 10_000
    connections: int = 10_000
    rate: float | None = None
    window: int = 8
    duration: float = 10.0
    text_bytes: int = 64
    seed: int = 1


def run_tag() -> str:
    """A prefix that keeps this run's users and groups apart from any other's
    on a shared server."""
    return "l" + secrets.token_hex(3)


def build(name: str, options: Options, tag: str) -> Scenario:
    """The scenario ``name`` with names prefixed by ``tag``."""
    builders = {"dm": _dm, "group": _group, "offline": _offline, "idle": _idle, "mixed": _mixed}
    return builders[name](options, tag)


def _users(tag: str, count: int) -> tuple[str, ...]:
    return tuple(f"{tag}u{i}" for i in range(count))


def _scenario(name: str, users: tuple[str, ...], options: Options, **fields: Any) -> Scenario:
    fields = {
        "rate": options.rate,
        "window": options.window,
        "duration": options.duration,
        "text_bytes": options.text_bytes,
        **fields,
    }
    return Scenario(name, users, **fields)


def _dm(options: Options, tag: str) -> Scenario:
    users = _users(tag, options.users - options.users % 2)
    sends: dict[str, tuple[str, ...]] = {}
    members: dict[str, tuple[str, ...]] = {}
    for a, b in zip(users[::2], users[1::2], strict=True):
        conversation = dm(a, b)
        members[conversation] = (a, b)
        sends[a] = sends[b] = (conversation,)
    return _scenario("dm", users, options, sends=sends, members=members)


def _group(options: Options, tag: str) -> Scenario:
    users = _users(tag, options.members)
    gid = f"{tag}g0"
    conversation = f"group:{gid}"
    sends = {user: (conversation,) for user in users[: options.senders]}
    return _scenario(
        "group", users, options, groups=((gid, users),), sends=sends, members={conversation: users}
    )


def _offline(options: Options, tag: str) -> Scenario:
    reader = f"{tag}off"
    senders = _users(tag, options.senders)
    members = {dm(sender, reader): (sender, reader) for sender in senders}
    sends = {sender: (dm(sender, reader),) for sender in senders}
    return _scenario(
        "offline",
        (*senders, reader),
        options,
        sends=sends,
        members=members,
        late=(reader,),
        messages=-(-options.messages // len(senders)),
    )


def _idle(options: Options, tag: str) -> Scenario:
    return _scenario("idle", _users(tag, options.connections), options)


def _mixed(options: Options, tag: str) -> Scenario:
    pick = random.Random(options.seed)
    users = _users(tag, options.users)
    groups = []
    members: dict[str, tuple[str, ...]] = {}
    for i, size in enumerate(MIXED_GROUP_SIZES):
        chosen = tuple(pick.sample(users, min(size, len(users))))
        gid = f"{tag}g{i}"
        groups.append((gid, chosen))
        members[f"group:{gid}"] = chosen
    for i, user in enumerate(users):
        for step in range(1, MIXED_DM_PARTNERS // 2 + 1):
            other = users[(i + step) % len(users)]
            if other != user:
                members[dm(user, other)] = (user, other)
    mine: dict[str, list[str]] = {user: [] for user in users}
    for conversation, people in members.items():
        for person in people:
            mine[person].append(conversation)
    return _scenario(
        "mixed",
        users,
        options,
        # A person sends a message every couple of seconds at most.
        rate=options.rate or MIXED_RATE,
        groups=tuple(groups),
        sends={user: tuple(convs) for user, convs in mine.items() if convs},
        members=members,
        typing=0.3,
        reads=0.2,
        reconnects=0.02,
    )
