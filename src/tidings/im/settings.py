"""The IM layer's tunables, one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class IMSettings:
    # Long enough for a long chat message, short enough to keep a fan-out cheap.
    max_text_chars: int = 4000
    # Groups with more members than this use read fan-out: one history entry
    # per message instead of one inbox entry per member. See docs/benchmarks.md
    # ("fan-out") for the figures behind the default.
    write_fanout_max: int = 200
    # A sender may recall a message for this long (admins of a group: any time).
    recall_window: float = 120.0
    # A sender may edit a message for this long.
    edit_window: float = DAY
    # Inbox entries are kept this long; a device offline for longer re-fetches
    # per-conversation history (which is kept forever).
    inbox_ttl: float = 30 * DAY
    # Login sessions (device tokens) expire after this long.
    session_ttl: float = 30 * DAY
    max_group_members: int = 100_000
    # Argon2id cost: the defaults of argon2-cffi (RFC 9106 low-memory profile).
    # Tests lower them, never production.
    password_time_cost: int = 3
    password_memory_kib: int = 65_536
