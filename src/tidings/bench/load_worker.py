"""A client process of ``tidings bench load``.

The orchestrator starts several of these (never in the server's process) and
drives them through phases over a pipe: ``setup`` (register and log in its
users), ``connect`` (open the sockets of the online users, or of the late
ones, timed), ``send`` (run the scenario's senders), ``drain`` (wait until no
frame arrives for a while), ``report``, ``stop``. Each answer is
``("done", payload)``; during ``send`` the process also reports
``("progress", sent, delivered)`` now and then.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import orjson

from .load_device import Device, background
from .load_scenarios import Scenario
from .load_server import raise_open_files
from .load_verify import SentKey, Verifier

PASSWORD = "load bench password"
# Registrations, logins and handshakes in flight per process: enough to keep
# the server busy without a thundering herd of timeouts.
SETUP_CONCURRENCY = 32
# The drain ends once no frame arrived for this long (and no sync or pull is
# in flight): pushes of committed messages take milliseconds.
QUIET_SECONDS = 1.0
# ...or after this long, whatever still arrives (then the report shows losses).
DRAIN_LIMIT = 60.0
PROGRESS_SECONDS = 0.5
# How long a reconnecting mixed user stays away.
RECONNECT_PAUSE = 0.3
# HTTP connections per process for pulls of read-fan-out groups: one per
# member pulling at once in a 250-member group.
PULL_CONNECTIONS = 256


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    index: int
    url: str
    users: tuple[str, ...]
    scenario: Scenario
    seed: int = 1


class Worker:
    """The devices of one client process and what they saw."""

    def __init__(self, plan: WorkerPlan, http: aiohttp.ClientSession, pipe: Connection) -> None:
        self.plan = plan
        self.scenario = plan.scenario
        self.http = http
        self.pipe = pipe
        self.api_url = plan.url + "/api"
        self.ws_url = plan.url.replace("http", "ws", 1) + "/ws"
        self.tokens: dict[str, str] = {}
        self.devices: dict[str, Device] = {}
        self.verifier = Verifier()
        self.acked: dict[SentKey, int] = {}
        self.ack_latencies: list[float] = []
        self.random = random.Random(plan.seed * 1000 + plan.index)
        self.sent = self.errors = self.redundant = self.pulls = 0
        self.typing = self.reads = self.reconnects = self.activity = 0
        self.last_error = ""
        self.tasks: set[asyncio.Task[None]] = set()
        self.pull_gate = asyncio.Semaphore(PULL_CONNECTIONS)
        self.failure: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self.cpu = 0.0

    def spawn(self, coroutine: Any) -> None:
        background(coroutine, self.tasks, self.failure)

    async def _unless_failed(self, work: Any) -> None:
        """Await ``work``; raise at once if a background task fails meanwhile."""
        task = asyncio.ensure_future(work)
        await asyncio.wait({task, self.failure}, return_when=asyncio.FIRST_COMPLETED)
        if self.failure.done():
            task.cancel()
            raise self.failure.result()
        await task

    async def _limited(self, users: tuple[str, ...], action: Any) -> None:
        gate = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def one(user: str) -> None:
            async with gate:
                await action(user)

        await asyncio.gather(*(one(user) for user in users))

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(self.api_url + path, data=orjson.dumps(body)) as response:
            reply: dict[str, Any] = orjson.loads(await response.read())
            if response.status >= 400:
                raise RuntimeError(f"POST {path}: {response.status} {reply}")
            return reply

    async def setup(self) -> None:
        async def register(user: str) -> None:
            await self._post("/register", {"username": user, "password": PASSWORD})
            login = await self._post("/login", {"username": user, "password": PASSWORD})
            self.tokens[user] = login["token"]

        await self._limited(self.plan.users, register)

    async def connect(self, late: bool) -> dict[str, Any]:
        """Open the sockets of the online users (or the late ones); for late
        ones, the time until their inbox is caught up."""
        late_users = set(self.scenario.late)
        users = tuple(u for u in self.plan.users if (u in late_users) == late)
        started = time.perf_counter()

        async def open_one(user: str) -> None:
            device = self.devices[user] = Device(self, user, self.tokens[user], timed=not late)
            await device.connect()
            await device.caught_up.wait()

        await self._limited(users, open_one)
        return {"connected": len(users), "seconds": time.perf_counter() - started}

    async def send(self) -> None:
        cpu = time.process_time()
        sc = self.scenario
        deadline = time.monotonic() + sc.duration
        senders = [
            self._sender(self.devices[user], sc.sends[user], deadline)
            for user in self.plan.users
            if user in sc.sends and user in self.devices
        ]
        if sc.reconnects:
            for device in self.devices.values():
                self.spawn(self._reconnecting(device, deadline))
        ticker = asyncio.create_task(self._progress())
        await self._unless_failed(asyncio.gather(*senders))
        if not senders:
            await self._unless_failed(asyncio.sleep(sc.duration))
        ticker.cancel()
        self.cpu += time.process_time() - cpu

    async def _sender(
        self, device: Device, conversations: tuple[str, ...], deadline: float
    ) -> None:
        sc = self.scenario
        text = "x" * sc.text_bytes
        loop = asyncio.get_running_loop()
        # Senders start at random points of their first interval, not in lockstep.
        next_at = loop.time() + (self.random.random() / sc.rate if sc.rate else 0.0)
        count = 0
        while (count < sc.messages) if sc.messages is not None else (loop.time() < deadline):
            if sc.rate:
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                next_at += self.random.expovariate(sc.rate)
            conversation = conversations[count % len(conversations)]
            if len(conversations) > 1:
                conversation = self.random.choice(conversations)
            if sc.typing and self.random.random() < sc.typing:
                device.typing(conversation)
            await device.send(conversation, text)
            if sc.reads and self.random.random() < sc.reads:
                device.mark_read(conversation)
            count += 1
        await device.idle.wait()

    async def _reconnecting(self, device: Device, deadline: float) -> None:
        rate = self.scenario.reconnects
        while True:
            await asyncio.sleep(self.random.expovariate(rate))
            if time.monotonic() >= deadline:
                return
            await device.reconnect(RECONNECT_PAUSE)

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            self.pipe.send(("progress", self.sent, self.verifier.delivered))

    async def drain(self) -> None:
        """Wait until every push, sync and pull has settled."""
        cpu = time.process_time()
        started = time.monotonic()
        last = -1
        while time.monotonic() - started < DRAIN_LIMIT:
            busy = any(device.busy for device in self.devices.values())
            if self.activity == last and not busy:
                break
            last = self.activity
            await self._unless_failed(asyncio.sleep(QUIET_SECONDS))
        self.cpu += time.process_time() - cpu

    def report(self) -> dict[str, Any]:
        v = self.verifier
        return {
            "acked": self.acked,
            "received": v.received(),
            "latencies": v.latencies,
            "ack_latencies": self.ack_latencies,
            "delivered": v.delivered,
            "echoes": v.echoes,
            "duplicated": v.duplicated,
            "out_of_order": v.out_of_order,
            "sent": self.sent,
            "errors": self.errors,
            "last_error": self.last_error,
            "redundant_pushes": self.redundant,
            "pulls": self.pulls,
            "typing": self.typing,
            "reads": self.reads,
            "reconnects": self.reconnects,
            "cpu": self.cpu,
        }

    async def stop(self) -> None:
        for device in self.devices.values():
            await device.close()
        for task in list(self.tasks):
            task.cancel()


async def _serve(pipe: Connection, plan: WorkerPlan) -> None:
    # No connector limit: every socket holds a connection for its whole life.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        worker = Worker(plan, http, pipe)
        try:
            await _obey(pipe, worker)
        except Exception:
            pipe.send(("failed", traceback.format_exc()))
            await worker.stop()


async def _obey(pipe: Connection, worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    while True:
        command, *args = await loop.run_in_executor(None, pipe.recv)
        result: Any = None
        if command == "setup":
            await worker.setup()
        elif command == "connect":
            result = await worker.connect(*args)
        elif command == "send":
            await worker.send()
        elif command == "drain":
            await worker.drain()
        elif command == "report":
            result = worker.report()
        elif command == "stop":
            await worker.stop()
            pipe.send(("done", None))
            return
        pipe.send(("done", result))


def main(pipe: Connection, plan: WorkerPlan) -> None:
    """A client process's entry point (multiprocessing target)."""
    raise_open_files()
    try:
        import uvloop
    except ImportError:  # the standard loop works too, more slowly
        asyncio.run(_serve(pipe, plan))
    else:
        uvloop.run(_serve(pipe, plan))
