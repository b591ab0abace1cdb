"""The push hub: which sockets each user has, and what is queued for each.

The IM layer calls :meth:`Hub.publish` right after each commit. The hub encodes
each event once, queues it on every socket of every recipient and returns at
once: it never waits for a socket. A socket whose queue is full is cut off
(close code 4009) rather than slowing anyone else; its device resyncs on
reconnect.

With several nodes the hub also hands each event to the bus (:mod:`.bus`),
which carries it to the nodes holding the recipient's other sockets, and
pushes what the bus brings from them (:meth:`Hub.deliver`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator

from ..errors import TooManyConnections
from ..im import Delivery, GroupAdvanced, InboxAdvanced, SessionRevoked
from .bus import Bus, LocalBus
from .metrics import Metrics
from .protocol import (
    CLOSE_HEARTBEAT,
    CLOSE_REVOKED,
    CLOSE_SLOW_CONSUMER,
    CLOSE_UNAUTHORIZED,
    EventEncoder,
    Session,
)

log = logging.getLogger(__name__)

# An outbox item: the frame (None asks the writer for a WebSocket ping) and,
# for a push, when it was queued (perf_counter; 0.0 for other frames), for the
# commit-to-push latency.
Item = tuple[bytes | None, float]
Closer = Callable[[int, str], None]


class Connection:
    """One authenticated socket as the hub sees it.

    Args:
        conn_id: a short id for logs.
        session: the protocol state (user, device, delivered seq, heartbeats).
        limit: the most frames queued before the socket is cut off.
        closer: closes the socket with a code and reason (the transport's job).
    """

    def __init__(self, conn_id: str, session: Session, limit: int, closer: Closer) -> None:
        self.id = conn_id
        self.session = session
        self.limit = limit
        self.outbox: deque[Item] = deque()
        self.wake = asyncio.Event()
        self.closed_with: int | None = None
        self._closer = closer

    @property
    def user(self) -> str:
        assert self.session.user is not None, "a hub connection is authenticated"
        return self.session.user

    @property
    def device(self) -> str | None:
        return self.session.device

    def queue(self, data: bytes | None, stamp: float) -> None:
        self.outbox.append((data, stamp))
        self.wake.set()

    def close(self, code: int, reason: str) -> None:
        """Close once; later calls do nothing."""
        if self.closed_with is None:
            self.closed_with = code
            self.wake.set()
            self._closer(code, reason)


class Hub:
    """Registry of live sockets per user and fan-out of pushes to them."""

    def __init__(
        self,
        metrics: Metrics,
        max_per_user: int,
        clock: Callable[[], float] = time.perf_counter,
        bus: Bus | None = None,
    ) -> None:
        self.metrics = metrics
        self.max_per_user = max_per_user
        self.bus: Bus = bus or LocalBus()
        self.encoder = EventEncoder()
        self._clock = clock
        self._users: dict[str, dict[Connection, None]] = {}
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return sum(len(conns) for conns in self._users.values())

    def __iter__(self) -> Iterator[Connection]:
        for conns in list(self._users.values()):
            yield from list(conns)

    def add(self, conn: Connection) -> bool:
        """Register a socket. Returns whether it is the user's first on any node
        (now online).

        Raises:
            TooManyConnections: the user is at the limit.
        """
        conns = self._users.setdefault(conn.user, {})
        if len(conns) >= self.max_per_user:
            raise TooManyConnections(
                f"at most {self.max_per_user} sockets per user", limit=self.max_per_user
            )
        conns[conn] = None
        self._empty.clear()
        self.metrics.connections.inc()
        if len(conns) > 1:
            return False
        self.bus.watch(conn.user, True)
        return not self.bus.online_elsewhere(conn.user)

    def remove(self, conn: Connection) -> bool:
        """Unregister a socket. Returns whether it was the user's last on any
        node (now offline)."""
        conns = self._users.get(conn.user)
        if conns is None or conn not in conns:
            return False
        del conns[conn]
        self.metrics.connections.dec()
        if conns:
            return False
        del self._users[conn.user]
        if not self._users:
            self._empty.set()
        self.bus.watch(conn.user, False)
        return not self.bus.online_elsewhere(conn.user)

    def online(self, user: str) -> bool:
        """Whether ``user`` has a socket on this node or another."""
        return user in self._users or self.bus.online_elsewhere(user)

    def local_users(self) -> list[str]:
        return list(self._users)

    def connections(self, user: str) -> list[Connection]:
        return list(self._users.get(user, ()))

    def send(
        self, conn: Connection, data: bytes, *, ephemeral: bool = False, push: bool = False
    ) -> None:
        """Queue ``data`` on one socket.

        An ephemeral frame (typing, presence) is dropped when the queue is half
        full; any other frame that finds the queue full cuts the socket off.
        ``push`` marks a frame caused by a commit (timed for the metrics).
        """
        if conn.closed_with is not None:
            return
        if len(conn.outbox) >= conn.limit:
            self.metrics.overflows.inc()
            log.warning("conn=%s user=%s outbound queue full; cut off", conn.id, conn.user)
            conn.close(CLOSE_SLOW_CONSUMER, "slow consumer")
            return
        if ephemeral and len(conn.outbox) * 2 >= conn.limit:
            return
        conn.queue(data, self._clock() if push else 0.0)

    def send_to_user(
        self, user: str, data: bytes, *, ephemeral: bool = False, push: bool = False
    ) -> None:
        """Queue ``data`` on each of ``user``'s sockets here; an ephemeral frame
        also goes to their sockets on other nodes."""
        for conn in self.connections(user):
            self.send(conn, data, ephemeral=ephemeral, push=push)
        if ephemeral:
            self.bus.relay(user, data)

    def publish(self, delivery: Delivery) -> None:
        """The IM layer's publish callback: push one committed event here and
        hand it to the bus for the other nodes."""
        self.deliver(delivery)
        self.bus.publish(delivery)

    def deliver_frame(self, user: str, frame: bytes) -> None:
        """An ephemeral frame from another node: queue it on ``user``'s sockets here."""
        for conn in self.connections(user):
            self.send(conn, frame, ephemeral=True)

    def deliver(self, delivery: Delivery) -> None:
        """Push one committed event to the sockets on this node."""
        if isinstance(delivery, InboxAdvanced):
            self._inbox(delivery)
        elif isinstance(delivery, GroupAdvanced):
            data = self.encoder.group_head(delivery)
            for member in delivery.members:
                self.send_to_user(member, data, push=True)
        elif isinstance(delivery, SessionRevoked):
            for conn in self.connections(delivery.user):
                if conn.device == delivery.device:
                    conn.close(CLOSE_REVOKED, "session revoked")

    def _inbox(self, delivery: InboxAdvanced) -> None:
        conns = self._users.get(delivery.user)
        if not conns:
            return
        for entry in delivery.entries:
            data: bytes | None = None
            for conn in list(conns):
                if conn.session.should_push(entry.seq):
                    data = data or self.encoder.event(entry)
                    self.send(conn, data, push=True)

    def sweep(self, now: float) -> None:
        """Heartbeats: ping quiet sockets, reap silent ones (``now`` is the
        session clock)."""
        for conn in self:
            action = conn.session.heartbeat_due(now)
            if action == "ping":
                conn.queue(None, 0.0)
            elif action == "reap":
                log.info("conn=%s user=%s silent too long; reaped", conn.id, conn.user)
                conn.close(CLOSE_HEARTBEAT, "heartbeat timeout")

    async def recheck(self, signed_in: Callable[[str, str], Awaitable[bool]], now: float) -> None:
        """Close the sockets whose session ended while they were open: its
        token expired (``now`` is the store clock), or its device was signed
        out where no push reached this node (``tidings admin reset-password``
        runs in a process of its own). ``signed_in(user, device)`` reads the
        store; a failed read leaves the socket for the next round."""
        for conn in self:
            if conn.closed_with is not None or conn.device is None:
                continue
            if conn.session.expires_at <= now:
                conn.close(CLOSE_UNAUTHORIZED, "session expired")
            elif not await signed_in(conn.user, conn.device):
                conn.close(CLOSE_REVOKED, "session revoked")

    def close_all(self, code: int, reason: str) -> None:
        for conn in self:
            conn.close(code, reason)

    async def drained(self, timeout: float) -> bool:
        """Wait until no socket is registered (at most ``timeout`` seconds)."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            return False
        return True
