"""The bus over NATS (``--bus nats://host:4222[,nats://…]``), for many nodes.

Core NATS, not JetStream: a push is worth nothing once the device has synced,
so the bus needs fan-out with low latency, not storage. Subscriptions are per
user (see :mod:`.bus`): a node subscribes to ``tidings.user.<name>`` on the
user's first socket and unsubscribes on the last one. NATS keeps the interest
graph, so each delivery reaches only the nodes holding the user's sockets;
a wildcard would send every delivery to every node and make each node decode
and drop (N-1)/N of them. A SUB/UNSUB line per connect is far cheaper than that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .bus import Clock, QueuedBus
from .bus_codec import GROUPS, PRESENCE

log = logging.getLogger(__name__)

# nats-py retries each server of the list this often while the bus is down;
# under a second keeps the gap in cross-node push short after a restart.
RECONNECT_WAIT = 0.5
CONNECT_TIMEOUT = 2
# nats-py's own buffer while reconnecting; ours (bus.BUFFER) holds the rest.
PENDING_BYTES = 4 * 1024 * 1024


class NatsBus(QueuedBus):
    """A :class:`~.bus.Bus` over a NATS server or cluster.

    Args:
        servers: NATS URLs (any members of one cluster).
        node: this node's id on the bus (default: host, pid, random).
        clock: monotonic seconds, for presence expiry.
    """

    def __init__(self, servers: list[str], node: str | None = None, clock: Clock = time.monotonic):
        super().__init__(node, clock)
        self.servers = servers
        self._nc: Any = None
        self._subs: dict[str, Any] = {}

    async def _connect(self) -> None:
        import nats

        self._nc = await nats.connect(
            self.servers,
            name=f"tidings {self.node}",
            # A node's own messages are already pushed to its own sockets.
            no_echo=True,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=RECONNECT_WAIT,
            connect_timeout=CONNECT_TIMEOUT,
            pending_size=PENDING_BYTES,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        await self._nc.subscribe(PRESENCE, cb=self._on_message)
        await self._nc.subscribe(GROUPS, cb=self._on_message)
        self.connected.set()
        log.info("bus: connected to %s", self._nc.connected_url.netloc)

    async def _on_message(self, msg: Any) -> None:
        self._received(msg.subject, msg.data)

    async def _on_error(self, exc: Exception) -> None:
        # Called on every failed reconnect attempt: the disconnect was logged.
        log.debug("bus: %s", exc or type(exc).__name__)

    async def _on_disconnected(self) -> None:
        self.connected.clear()
        log.warning("bus: disconnected from NATS; pushes to other nodes wait")

    async def _on_reconnected(self) -> None:
        self.connected.set()
        log.info("bus: reconnected to %s", self._nc.connected_url.netloc)

    def _up(self) -> bool:
        return self._nc is not None and bool(self._nc.is_connected)

    async def _send(self, subject: str, payload: bytes) -> None:
        await self._nc.publish(subject, payload)

    async def _subscribe(self, subject: str) -> None:
        if subject not in self._subs:
            self._subs[subject] = await self._nc.subscribe(subject, cb=self._on_message)

    async def _unsubscribe(self, subject: str) -> None:
        sub = self._subs.pop(subject, None)
        if sub is not None:
            await sub.unsubscribe()

    async def _disconnect(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            try:
                await asyncio.wait_for(self._nc.close(), CONNECT_TIMEOUT)
            except Exception as exc:  # closing a dead connection: nothing to save
                log.debug("bus: close failed: %s", exc)
