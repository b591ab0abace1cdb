"""The bus between the workers of one machine (``--workers N`` without ``--bus``).

The supervisor runs a :class:`Relay` on a Unix socket; each worker's
:class:`RelayBus` connects to it. The relay copies every message to every other
worker: with one worker per core there are only a few, so routing by interest
would save little, and a worker drops a user's delivery in one dictionary
lookup when that user has no socket on it.

Frames on the socket: a 2-byte subject length and a 4-byte payload length (big
endian), then the subject and the payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time

from .bus import Clock, QueuedBus

log = logging.getLogger(__name__)

HEADER = struct.Struct(">HI")
# A worker that stops reading (stuck, dying) gets no more than this many bytes
# queued; past it, its messages are dropped (pushes are an optimisation).
MAX_BACKLOG = 8 * 1024 * 1024
# How often a worker retries the relay socket (the supervisor restarts it with
# the workers, so it is back quickly).
RECONNECT_WAIT = 0.2


def pack(subject: str, payload: bytes) -> bytes:
    raw = subject.encode()
    return HEADER.pack(len(raw), len(payload)) + raw + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    """One frame. Raises ``asyncio.IncompleteReadError`` at the end of the stream."""
    size, length = HEADER.unpack(await reader.readexactly(HEADER.size))
    raw = await reader.readexactly(size + length)
    return raw[:size].decode(), raw[size:]


class Relay:
    """Copies each worker's messages to the other workers (supervisor side)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._peers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for peer in list(self._peers):
            peer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._peers.add(writer)
        try:
            while True:
                subject, payload = await read_frame(reader)
                frame = pack(subject, payload)
                for peer in self._peers:
                    if peer is not writer and peer.transport.get_write_buffer_size() < MAX_BACKLOG:
                        peer.write(frame)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._peers.discard(writer)
            writer.close()


class RelayBus(QueuedBus):
    """A :class:`~.bus.Bus` over the supervisor's relay socket (worker side)."""

    def __init__(self, path: str, node: str | None = None, clock: Clock = time.monotonic):
        super().__init__(node, clock)
        self.path = path
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None

    async def _connect(self) -> None:
        while True:
            try:
                reader, self._writer = await asyncio.open_unix_connection(self.path)
            except OSError:
                await asyncio.sleep(RECONNECT_WAIT)
                continue
            self._reader_task = asyncio.create_task(self._read(reader))
            self.connected.set()
            return

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                self._received(*await read_frame(reader))
        except (asyncio.IncompleteReadError, ConnectionError):
            log.warning("bus: the relay went away; reconnecting")
        self.connected.clear()
        await self._connect()

    def _up(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def _send(self, subject: str, payload: bytes) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise ConnectionError("not connected to the relay")
        writer.write(pack(subject, payload))
        if writer.transport.get_write_buffer_size() > MAX_BACKLOG:
            await writer.drain()

    async def _subscribe(self, subject: str) -> None:
        pass  # the relay sends everything to everyone

    async def _unsubscribe(self, subject: str) -> None:
        pass

    async def _disconnect(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        if self._writer is not None:
            self._writer.close()
