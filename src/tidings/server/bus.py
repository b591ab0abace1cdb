"""The bus: what one node tells the others after a commit, and who is online where.

A node pushes each committed event to its own sockets at once (the hub) and
hands it to the bus, which carries it to the nodes where the recipient has
sockets. Push is an optimisation: a device that misses one finds the same thing
by syncing. So the bus is fire-and-forget: :meth:`Bus.publish` never waits and
never fails; when the transport is down, deliveries wait in a bounded buffer
(the oldest dropped first) and flow again once it is back.

Subjects (the NATS names; the worker relay uses the same ones):

- ``tidings.user.<user>``: a user's inbox events, session revocations and
  ephemeral frames (typing, presence) for that user. A node subscribes while the
  user has a socket on it, so a delivery crosses the network only to the nodes
  that push it.
- ``tidings.group.<gid>``: the head of a read-fan-out group with its member
  list, once per send (split into messages of ``GROUP_HEAD_MEMBERS`` names for
  the largest groups); every node listens (``tidings.group.>``) and pushes to
  its own online members.
- ``tidings.presence``: which users each node has sockets for (changes as they
  happen, the full list every ``PRESENCE_INTERVAL``), so "online" and typing
  audiences span nodes.

Implementations: :class:`LocalBus` (one process, the default), ``NatsBus``
(``--bus nats://…``, in :mod:`.bus_nats`) and ``RelayBus`` (the workers of
``--workers N`` on one machine, in :mod:`.bus_relay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson

from ..errors import InvalidInput
from ..im import Delivery
from .bus_codec import PRESENCE, decode, encode, encode_frame, user_subject

log = logging.getLogger(__name__)

# Deliveries held while the transport is down. A push older than a few seconds
# is worth little (the device syncs on reconnect), and 10,000 small frames is a
# few MB at most.
BUFFER = 10_000
# Each node repeats its list of online users this often; a node silent for
# PRESENCE_TTL_FACTOR intervals (killed, cut off) counts as having nobody online.
PRESENCE_INTERVAL = 5.0
PRESENCE_TTL_FACTOR = 3
# Users per presence message: keeps each under NATS' default 1 MB payload limit.
PRESENCE_CHUNK = 5_000

# On close, queued messages get this many seconds to go out.
CLOSE_FLUSH = 1.0

Clock = Callable[[], float]


class Receiver(Protocol):
    """What the bus hands remote traffic to (the hub)."""

    def deliver(self, delivery: Delivery) -> None:
        """Push a delivery committed on another node to this node's sockets."""

    def deliver_frame(self, user: str, frame: bytes) -> None:
        """Queue an ephemeral frame (typing, presence) on ``user``'s sockets here."""

    def local_users(self) -> Iterable[str]:
        """The users with a socket on this node."""


class Bus(Protocol):
    """Carries deliveries and ephemeral frames between nodes (see module docs)."""

    node: str

    async def start(self, receiver: Receiver) -> None:
        """Begin carrying traffic; returns at once even when the transport is down."""

    def publish(self, delivery: Delivery) -> None:
        """Send a committed delivery to the other nodes; never waits, never raises."""

    def relay(self, user: str, frame: bytes) -> None:
        """Send an ephemeral frame to ``user``'s sockets on the other nodes."""

    def watch(self, user: str, online: bool) -> None:
        """``user`` got a first socket here (``online``) or lost the last one."""

    def online_elsewhere(self, user: str) -> bool:
        """Whether another node reports a socket of ``user``."""

    async def close(self) -> None:
        """Stop; deliveries still buffered are dropped."""


class LocalBus:
    """The bus of a lone node: there is nobody else to tell."""

    node = "local"

    async def start(self, receiver: Receiver) -> None:
        pass

    def publish(self, delivery: Delivery) -> None:
        pass

    def relay(self, user: str, frame: bytes) -> None:
        pass

    def watch(self, user: str, online: bool) -> None:
        pass

    def online_elsewhere(self, user: str) -> bool:
        return False

    async def close(self) -> None:
        pass


def new_node_id() -> str:
    """A name for this process on the bus: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Presence:
    """Which users the other nodes have sockets for, as they report it.

    Args:
        node: this node's id (its own reports are ignored).
        clock: monotonic seconds (tests advance a fake one).
    """

    def __init__(self, node: str, clock: Clock = time.monotonic) -> None:
        self.node = node
        self._clock = clock
        self._ttl = PRESENCE_INTERVAL * PRESENCE_TTL_FACTOR
        # node -> user -> when last reported online
        self._seen: dict[str, dict[str, float]] = {}

    def report(self, payload: bytes) -> bool:
        """Apply a ``tidings.presence`` message. Returns whether it asks for a
        full list (a node that just started)."""
        value = orjson.loads(payload)
        node = value["n"]
        if node == self.node:
            return False
        now = self._clock()
        users = self._seen.setdefault(node, {})
        for user in value.get("on", ()):
            users[user] = now
        for user in value.get("off", ()):
            users.pop(user, None)
        return bool(value.get("hello"))

    def online(self, user: str) -> bool:
        oldest = self._clock() - self._ttl
        return any(users.get(user, oldest) > oldest for users in self._seen.values())

    def expire(self) -> None:
        """Forget reports older than the TTL (a node that went silent)."""
        oldest = self._clock() - self._ttl
        for node, users in list(self._seen.items()):
            for user in [u for u, seen in users.items() if seen <= oldest]:
                del users[user]
            if not users:
                del self._seen[node]

    def message(
        self, on: Iterable[str] = (), off: Iterable[str] = (), hello: bool = False
    ) -> bytes:
        body: dict[str, Any] = {"n": self.node, "on": list(on), "off": list(off)}
        if hello:
            body["hello"] = True
        return orjson.dumps(body)


class QueuedBus(ABC):
    """The shared half of the networked buses: encoding, the bounded send
    buffer, presence, the set of watched subjects. A subclass supplies the
    transport (:meth:`_connect`, :meth:`_send`, :meth:`_subscribe`,
    :meth:`_unsubscribe`, :meth:`_disconnect`) and calls :meth:`_received` for
    every message that arrives.
    """

    def __init__(self, node: str | None = None, clock: Clock = time.monotonic) -> None:
        self.node = node or new_node_id()
        self.presence = Presence(self.node, clock)
        self.receiver: Receiver | None = None
        self.connected = asyncio.Event()
        self.dropped = 0
        self.sent = 0
        self.received = 0
        # Subjects this node wants (users with a socket here); the control task
        # brings the transport's subscriptions in line, one change at a time.
        self.watched: set[str] = set()
        self._changes: asyncio.Queue[str] = asyncio.Queue()
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- transport (the subclass) ------------------------------------------------

    @abstractmethod
    async def _connect(self) -> None:
        """Connect, retrying until it succeeds; the transport reconnects by itself
        afterwards and keeps ``connected`` set while it is up."""

    @abstractmethod
    async def _send(self, subject: str, payload: bytes) -> None:
        """Publish one message; raise when the transport refuses it."""

    @abstractmethod
    async def _subscribe(self, subject: str) -> None:
        """Start receiving ``subject``."""

    @abstractmethod
    async def _unsubscribe(self, subject: str) -> None:
        """Stop receiving ``subject``."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close the transport (after the send buffer is flushed)."""

    @abstractmethod
    def _up(self) -> bool:
        """Whether the transport is connected right now."""

    # -- the Bus protocol ----------------------------------------------------------

    async def start(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self._tasks = [
            asyncio.create_task(self._run_connect()),
            asyncio.create_task(self._pump()),
            asyncio.create_task(self._control()),
            asyncio.create_task(self._announce_forever()),
        ]

    def publish(self, delivery: Delivery) -> None:
        for subject, payload in encode(delivery):
            self._queue(subject, payload)

    def relay(self, user: str, frame: bytes) -> None:
        self._queue(*encode_frame(user, frame))

    def watch(self, user: str, online: bool) -> None:
        subject = user_subject(user)
        if online:
            self.watched.add(subject)
        else:
            self.watched.discard(subject)
        self._changes.put_nowait(subject)
        message = self.presence.message(on=[user]) if online else self.presence.message(off=[user])
        self._queue(PRESENCE, message)

    def online_elsewhere(self, user: str) -> bool:
        return self.presence.online(user)

    async def close(self) -> None:
        # What is queued (the "offline" of the sockets just closed, say) gets a
        # moment to go out, so other nodes do not wait for it to expire.
        deadline = time.monotonic() + CLOSE_FLUSH
        while self._outbox and self.connected.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._disconnect()

    # -- inside --------------------------------------------------------------------

    def _queue(self, subject: str, payload: bytes) -> None:
        if len(self._outbox) >= BUFFER:
            self._outbox.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("bus buffer full: %d pushes to other nodes dropped", self.dropped)
        self._outbox.append((subject, payload))
        self._wake.set()

    async def _control(self) -> None:
        """Apply subscription changes in the order they were made."""
        while True:
            subject = await self._changes.get()
            await self.connected.wait()
            try:
                if subject in self.watched:
                    await self._subscribe(subject)
                else:
                    await self._unsubscribe(subject)
            except Exception as exc:  # the transport resubscribes on reconnect
                log.debug("bus subscription change on %s failed: %s", subject, exc)

    async def _run_connect(self) -> None:
        await self._connect()
        for subject in list(self.watched):
            self._changes.put_nowait(subject)
        self._queue(PRESENCE, self.presence.message(on=self._local(), hello=True))

    async def _pump(self) -> None:
        """Send the buffer in order while connected."""
        while True:
            await self.connected.wait()
            if not self._outbox:
                self._wake.clear()
                await self._wake.wait()
                continue
            subject, payload = self._outbox[0]
            try:
                await self._send(subject, payload)
            except Exception as exc:
                if self._up():  # the message itself was refused (too large…): drop it
                    log.warning("bus: a message on %s was refused: %s", subject, exc)
                    self._outbox.popleft()
                    self.dropped += 1
                else:  # down again: keep it for the reconnect
                    self.connected.clear()
                continue
            self._outbox.popleft()
            self.sent += 1

    async def _announce_forever(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_INTERVAL)
            self.presence.expire()
            self._announce_all()

    def _announce_all(self) -> None:
        users = self._local()
        for start in range(0, len(users), PRESENCE_CHUNK):
            on = users[start : start + PRESENCE_CHUNK]
            self._queue(PRESENCE, self.presence.message(on=on))

    def _local(self) -> list[str]:
        return list(self.receiver.local_users()) if self.receiver else []

    def _received(self, subject: str, payload: bytes) -> None:
        """Dispatch one message from the transport."""
        receiver = self.receiver
        if receiver is None:
            return
        self.received += 1
        try:
            if subject == PRESENCE:
                if self.presence.report(payload):
                    self._announce_all()
                return
            value = decode(payload)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("bad bus message on %s: %s", subject, exc)
            return
        if isinstance(value, tuple):
            receiver.deliver_frame(*value)
        else:
            receiver.deliver(value)


def open_bus(url: str, clock: Clock = time.monotonic) -> Bus:
    """The bus a ``--bus`` value names.

    ``""`` is the in-process bus of a lone node; ``nats://host:port[,nats://…]``
    a NATS server or cluster; ``relay:/path/to.sock`` the relay of
    ``--workers`` (started by the supervisor).

    Raises:
        InvalidInput: an unknown scheme.
    """
    if not url:
        return LocalBus()
    if url.startswith(("nats://", "tls://")):
        from .bus_nats import NatsBus

        return NatsBus([u.strip() for u in url.split(",") if u.strip()], clock=clock)
    if url.startswith("relay:"):
        from .bus_relay import RelayBus

        return RelayBus(url.removeprefix("relay:"), clock=clock)
    raise InvalidInput(f"--bus / TIDINGS_BUS: expected nats://host:port[,…], got {url!r}")
