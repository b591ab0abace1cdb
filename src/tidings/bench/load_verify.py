"""Delivery verification for ``tidings bench load``.

Every bench message carries ``data = {"n": n, "t": sent_at}``: ``n`` counts the
sender's messages in that conversation from 0, ``t`` is the sender's wall
clock (all processes run on one machine, so receivers can subtract it).
Receivers check each arrival (exactly once; conversation seqs and ``n`` only
rising); at the end the acks of every sender are compared with what every
member received.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# (receiver, conversation, sender)
StreamKey = tuple[str, str, str]
# (sender, conversation)
SentKey = tuple[str, str]


@dataclass(slots=True)
class _Stream:
    """What one receiver got of one sender's messages in one conversation."""

    top: int = -1
    missing: set[int] = field(default_factory=set)
    received: int = 0


class Verifier:
    """Checks the bench messages one client process receives."""

    def __init__(self) -> None:
        self.streams: dict[StreamKey, _Stream] = {}
        self._seqs: dict[tuple[str, str], int] = {}
        self.latencies: list[float] = []
        self.delivered = 0
        self.echoes = 0
        self.duplicated = 0
        self.out_of_order = 0

    def deliver(
        self, receiver: str, message: Mapping[str, Any], now: float, *, timed: bool = True
    ) -> None:
        """Check one message ``receiver`` got at ``now`` (wall clock); others'
        messages (system entries, say) are ignored. ``timed``: its latency counts."""
        data = message.get("data")
        if not isinstance(data, dict) or "n" not in data:
            return
        conversation, sender, n = message["conversation"], message["from"], data["n"]
        key = (receiver, conversation, sender)
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = _Stream()
        late = False
        if n > stream.top:
            stream.missing.update(range(stream.top + 1, n))
            stream.top = n
        elif n in stream.missing:
            stream.missing.discard(n)
            late = True
        else:
            self.duplicated += 1
            return
        stream.received += 1
        place = (receiver, conversation)
        last_seq = self._seqs.get(place, 0)
        if late or message["seq"] < last_seq:
            self.out_of_order += 1
        else:
            self._seqs[place] = message["seq"]
        if receiver == sender:
            self.echoes += 1
        else:
            self.delivered += 1
            if timed:
                self.latencies.append(now - data["t"])

    def received(self) -> dict[StreamKey, int]:
        return {key: stream.received for key, stream in self.streams.items()}


def lost(
    acked: Mapping[SentKey, int],
    received: Mapping[StreamKey, int],
    members: Mapping[str, Iterable[str]],
) -> int:
    """Messages acked to their sender but never received by a member."""
    missing = 0
    for (sender, conversation), count in acked.items():
        for member in members[conversation]:
            missing += max(0, count - received.get((member, conversation, sender), 0))
    return missing
