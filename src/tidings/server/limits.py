"""Rate limits: token buckets keyed by user or by login attempt.

Time is passed in, never read here, so tests drive the buckets with a fake clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

# Buckets remembered at once; the least recently used beyond this are dropped
# (a dropped bucket is full again, which errs on the side of the user). 100,000
# buckets take about 10 MB.
MAX_BUCKETS = 100_000


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; starts full."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens. Returns 0 on success, else the seconds to wait."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate if self.rate > 0 else float("inf")

    def peek(self, now: float) -> float:
        """Like :meth:`take` but takes nothing."""
        tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        if tokens >= 1.0:
            return 0.0
        return (1.0 - tokens) / self.rate if self.rate > 0 else float("inf")


class Buckets:
    """One :class:`TokenBucket` per key, created full on first use."""

    def __init__(self, rate: float, burst: float, max_keys: int = MAX_BUCKETS) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self.burst, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        """Take from ``key``'s bucket: 0 on success, else the seconds to wait."""
        return self._bucket(key, now).take(now, cost)

    def peek(self, key: str, now: float) -> float:
        """The seconds to wait before ``key`` may take one token (0: now)."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.peek(now)
