"""The benchmark's workload: realistic chat messages and who they go to.

Everything is drawn from one seeded generator, so two runs with the same seed
write the same messages to the same timelines (the store under test and the
naive reference replay the very same plan).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

from ..timeline import Message

_WORDS = (
    "ok sure thanks see you at the meeting tomorrow morning can we move it to three "
    "I just pushed the fix please review when you have a minute the build is green "
    "again lunch anyone coffee first sounds good running ten minutes late sorry "
    "did you get my last message the link is in the doc shared it with the team "
    "great job on the release notes let us ship it on friday after the demo"
).split()
_CJK = "明天上午开会我们改到三点可以吗刚推送了修复请帮忙看一下构建恢复正常午饭一起去吧"
# About one message in five is CJK text: a chat server's traffic is rarely all ASCII.
CJK_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class Fanout:
    """One message fanned out: an entry in its conversation's history and one in
    each member's inbox, pointing at the history entry (as ``tidings.im`` sends)."""

    history: str
    inboxes: tuple[str, ...]
    message: Message

    @property
    def entries(self) -> int:
        return 1 + len(self.inboxes)

    @property
    def client_id(self) -> str:
        """The sender's idempotency key, carried by the history entry."""
        return str(self.message["id"])


class Workload:
    """Draws messages, fan-outs and single appends.

    Args:
        inboxes: how many inboxes the fan-outs pick their targets among.
        fanout: inboxes per message.
        groups: how many conversation histories the messages belong to.
        seed: seeds the generator.
    """

    def __init__(self, *, inboxes: int, fanout: int, groups: int, seed: int) -> None:
        if fanout > inboxes:
            raise ValueError("fanout must not exceed the number of inboxes")
        self._rng = random.Random(seed)
        self.fanout = fanout
        self.inbox_ids = [f"inbox:u{n:05d}" for n in range(inboxes)]
        self.group_ids = [f"group:g{n:04d}" for n in range(groups)]
        self._sent = 0
        self._bytes = 0

    def message(self, conversation: str) -> Message:
        """A chat message of about 200 bytes once encoded."""
        rng = self._rng
        self._sent += 1
        if rng.random() < CJK_SHARE:
            start = rng.randrange(len(_CJK) - 28)
            text = _CJK[start : start + rng.randint(16, 28)]
        else:
            text = " ".join(rng.choices(_WORDS, k=rng.randint(12, 26)))
        message = {
            "id": f"{rng.getrandbits(64):016x}",
            "conversation": conversation,
            "sender": f"u{rng.randrange(len(self.inbox_ids)):05d}",
            "type": "text",
            "text": text,
            "sent_at": 1_795_000_000_000 + self._sent * 37,
        }
        self._bytes += len(orjson.dumps(message))
        return message

    def mean_message_bytes(self) -> float:
        """The mean encoded size of the messages drawn so far."""
        return self._bytes / max(1, self._sent)

    def fanouts(self, entries: int) -> list[Fanout]:
        """Enough fan-outs to write at least ``entries`` entries."""
        plan: list[Fanout] = []
        written = 0
        while written < entries:
            history = self._rng.choice(self.group_ids)
            inboxes = tuple(self._rng.sample(self.inbox_ids, self.fanout))
            plan.append(Fanout(history, inboxes, self.message(history)))
            written += plan[-1].entries
        return plan

    def appends(self, count: int) -> list[tuple[str, Message]]:
        """``count`` single appends, each to a random inbox."""
        return [
            (inbox, self.message(inbox)) for inbox in self._rng.choices(self.inbox_ids, k=count)
        ]

    def pick_inboxes(self, count: int) -> list[str]:
        return self._rng.choices(self.inbox_ids, k=count)
