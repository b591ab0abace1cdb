"""What every request handler and socket of one server shares."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..config import Settings
from ..errors import RateLimited
from ..im import Ack, Context, messaging
from .hub import Hub
from .limits import Buckets
from .metrics import Metrics

Clock = Callable[[], float]


@dataclass(slots=True)
class ServerState:
    """The server's parts.

    ``clock`` (monotonic seconds) drives heartbeats and rate limits; tests pass
    a fake one and advance it instead of sleeping.
    """

    settings: Settings
    ctx: Context
    hub: Hub
    metrics: Metrics
    clock: Clock = time.monotonic
    messages: Buckets = field(init=False)
    logins: Buckets = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.messages = Buckets(s.messages_per_second, s.message_burst)
        self.logins = Buckets(1.0 / s.login_refill, s.login_attempts)

    def take_message(self, user: str) -> None:
        """Count one message against the user's rate.

        Raises:
            RateLimited: over the rate; nothing may be written.
        """
        wait = self.messages.take(user, self.clock())
        if wait:
            raise RateLimited(
                f"at most {self.settings.messages_per_second:g} messages a second",
                retry_after=round(wait, 3),
            )

    async def send_message(self, user: str, conversation: str, **content: Any) -> Ack:
        """A send from either transport: the user's rate, the IM action, metrics.

        Raises:
            RateLimited, and whatever :func:`tidings.im.messaging.send` raises.
        """
        self.take_message(user)
        started = time.perf_counter()
        ack = await messaging.send(self.ctx, user, conversation, **content)
        if not ack.duplicate:
            self.metrics.send_to_commit.observe(time.perf_counter() - started)
            self.metrics.messages.inc()
        return ack

    def check_login(self, key: str) -> None:
        """Refuse a login attempt when ``key`` (username + address) failed too often.

        Raises:
            RateLimited: too many failed attempts.
        """
        wait = self.logins.peek(key, self.clock())
        if wait:
            raise RateLimited("too many failed logins; wait and retry", retry_after=round(wait, 1))

    def failed_login(self, key: str) -> None:
        self.logins.take(key, self.clock())


STATE_KEY: web.AppKey[ServerState] = web.AppKey("tidings_state", ServerState)
# The id of a request (and of the socket it upgrades to), for logs.
REQUEST_ID: web.RequestKey[str] = web.RequestKey("tidings_request_id", str)
