"""Chat traffic across nodes, recorded so a test can check that nothing was lost.

Every user sends, one message at a time, to its direct and group conversations;
each message's text is its client message id. Every device records each
message it is handed (through :class:`~tidings.client.Live`, which resends
until acked and resyncs after a gap or a reconnect). :meth:`Traffic.verify`
then checks the delivery contract and returns the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from tidings.client import Client, Live

PASSWORD = "correct horse battery"


class FailoverClient(Client):
    """A client that reconnects its socket to the next node each time, as a
    load balancer would send it elsewhere when its node is gone."""

    def __init__(self, urls: list[str], home: int) -> None:
        super().__init__(urls[home % len(urls)])
        self.urls = urls
        self._turn = itertools.count(home)

    def ws_url(self) -> str:
        url = self.urls[next(self._turn) % len(self.urls)]
        return url.replace("http", "ws", 1) + "/ws"


@dataclass
class Device:
    user: str
    client: FailoverClient
    sender: bool
    live: Live | None = None
    # (conversation, seq, text) in the order handed over
    got: list[tuple[str, int, str]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def receive(self) -> None:
        assert self.live is not None
        while True:
            event = await self.live.next()
            if event.get("type") == "message":
                message = event["message"]
                self.got.append((message["conversation"], message["seq"], message.get("text", "")))


@dataclass
class Traffic:
    """Users spread over ``urls``, each with ``devices`` devices on different nodes."""

    prefix: str
    urls: list[str]
    users: int = 6
    devices: int = 2
    interval: float = 0.02
    names: list[str] = field(init=False)
    all_devices: list[Device] = field(default_factory=list)
    members: dict[str, list[str]] = field(default_factory=dict)
    sent: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # cid -> user, conv, t
    acked: dict[str, tuple[str, int, float]] = field(default_factory=dict)  # cid -> conv, seq, t
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _senders: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = [f"{self.prefix}{i}" for i in range(self.users)]

    async def setup(self) -> None:
        homes = itertools.count()
        for name in self.names:
            first = FailoverClient(self.urls, next(homes))
            await first.register(name, PASSWORD)
            for d in range(self.devices):
                client = first if d == 0 else FailoverClient(self.urls, next(homes))
                await client.login(name, PASSWORD, f"device{d}")
                self.all_devices.append(Device(name, client, sender=d == 0))
        owner = self.all_devices[0].client
        for g, members in enumerate((self.names[: self.users // 2 + 1], self.names)):
            gid = f"{self.prefix}g{g}"
            await owner.create_group(f"group {g}", id=gid)
            await owner.add_members(gid, [m for m in members if m != self.names[0]])
            self.members[f"group:{gid}"] = list(members)
        for a, b in zip(self.names, self.names[1:] + self.names[:1], strict=True):
            first, second = sorted((a, b))
            self.members[f"dm:{first}:{second}"] = [first, second]
        for device in self.all_devices:
            device.live = await device.client.live(
                resend_after=2.0, request_timeout=5.0, max_backoff=0.5
            ).start()
            device.task = asyncio.create_task(device.receive())

    def start(self) -> None:
        for device in self.all_devices:
            if device.sender:
                self._senders.append(asyncio.create_task(self._send(device)))

    async def _send(self, device: Device) -> None:
        assert device.live is not None
        mine = [c for c, members in self.members.items() if device.user in members]
        for n in itertools.count():
            if self._stop.is_set():
                return
            conversation = random.choice(mine)
            cid = f"{device.user}-{n}"
            self.sent[cid] = (device.user, conversation, time.monotonic())
            ack = await device.live.send(conversation, cid, client_msg_id=cid)
            self.acked[cid] = (conversation, int(ack["seq"]), time.monotonic())
            await asyncio.sleep(self.interval * random.uniform(0.5, 1.5))

    async def stop(self, timeout: float = 40.0) -> None:
        """Stop sending; each sender's last message is awaited to its ack."""
        self._stop.set()
        await asyncio.wait_for(asyncio.gather(*self._senders), timeout)

    def recovery(self, fault_at: float) -> float:
        """Seconds from ``fault_at`` until every sender had a message sent after
        it acked (all senders making progress again)."""
        worst = 0.0
        for user in self.names:
            times = [
                self.acked[cid][2]
                for cid, (sender, _, started) in self.sent.items()
                if sender == user and started >= fault_at and cid in self.acked
            ]
            worst = max(worst, (min(times) if times else float("inf")) - fault_at)
        return worst

    async def settle(self, timeout: float = 30.0) -> None:
        """Sync every device to its inbox head and let its events be recorded."""
        deadline = time.monotonic() + timeout
        for device in self.all_devices:
            assert device.live is not None
            while True:
                try:
                    await device.live.sync()
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
        await asyncio.sleep(0.3)

    async def close(self) -> None:
        for device in self.all_devices:
            if device.task is not None:
                device.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await device.task
            if device.live is not None:
                await device.live.close()
            await device.client.close()

    async def history(self, url: str) -> dict[str, list[str]]:
        """Every conversation's texts, read from ``url``."""
        found: dict[str, list[str]] = {}
        for conversation, members in self.members.items():
            reader = next(d for d in self.all_devices if d.user == members[0]).client
            reader.base_url = url
            texts: list[str] = []
            after = 0
            while True:
                page, more = await reader.history(
                    conversation, after=after, limit=200, direction="forward"
                )
                texts += [m.get("text", "") for m in page]
                if not page or not more:
                    break
                after = page[-1]["seq"]
            found[conversation] = texts
        return found

    async def verify(self, url: str) -> dict[str, Any]:
        """Check the delivery contract; returns the figures (asserts on failure)."""
        history = await self.history(url)
        in_history = Counter(t for texts in history.values() for t in texts)
        missing_history = [cid for cid in self.acked if in_history[cid] != 1]
        twice = [cid for cid in self.sent if in_history[cid] > 1]
        expected = delivered = lost = duplicated = disordered = 0
        for device in self.all_devices:
            got = [item for item in device.got if item[2] in self.sent]
            counts = Counter(text for _, _, text in got)
            last: dict[str, int] = defaultdict(int)
            for conversation, seq, _ in got:
                disordered += seq <= last[conversation]
                last[conversation] = seq
            for cid, (conversation, _, _) in self.acked.items():
                if device.user in self.members[conversation]:
                    expected += 1
                    delivered += min(counts[cid], 1)
                    lost += counts[cid] == 0
            duplicated += sum(n - 1 for n in counts.values() if n > 1)
        figures = {
            "sent": len(self.sent),
            "acked": len(self.acked),
            "expected_deliveries": expected,
            "delivered": delivered,
            "lost": lost,
            "duplicated": duplicated,
            "out_of_order": disordered,
            "missing_from_history": len(missing_history),
            "twice_in_history": len(twice),
            "reconnects": sum(d.live.connections - 1 for d in self.all_devices if d.live),
        }
        assert self.acked, figures
        assert (lost, duplicated, disordered) == (0, 0, 0), figures
        assert not missing_history and not twice, (figures, missing_history[:5], twice[:5])
        return figures


# -- one fault under traffic --

# Traffic runs this long before the fault and at least this long after it.
BEFORE = 2.0
AFTER = 4.0
# Every sender must be making progress again this soon after a fault (generous:
# CI machines are slow; a run here recovers in 0.2 to 3 s).
RECOVER_WITHIN = 15.0
_phases = itertools.count()


async def run_fault(
    name: str, urls: list[str], fault: Callable[[], Awaitable[None]], check_url: str
) -> dict[str, Any]:
    traffic = Traffic(f"f{next(_phases)}u", urls)
    try:
        await traffic.setup()
        traffic.start()
        await asyncio.sleep(BEFORE)
        fault_at = time.monotonic()
        await fault()
        await asyncio.sleep(AFTER)
        await traffic.stop()
        recovered = traffic.recovery(fault_at)
        await traffic.settle()
        figures = await traffic.verify(check_url)
    finally:
        await traffic.close()
    figures = {"fault": name, **figures, "recover_s": round(recovered, 2)}
    print(json.dumps(figures))
    assert recovered < RECOVER_WITHIN, figures
    return figures


# -- raw sockets, for tests that must see what was pushed (no client-side sync) --


async def socket(client: Client, url: str) -> aiohttp.ClientWebSocketResponse:
    """A raw socket on node ``url`` (no client-side sync: what arrives was pushed)."""
    ws = await client.http.ws_connect(
        url.replace("http", "ws", 1) + "/ws", params={"token": client.token or ""}
    )
    assert orjson.loads((await ws.receive(timeout=5)).data)["op"] == "ready"
    return ws


async def frame(ws: aiohttp.ClientWebSocketResponse, op: str, timeout: float) -> dict[str, Any]:
    """The next frame ``op`` on ``ws`` (others skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        body: dict[str, Any] = orjson.loads(message.data)
        if body["op"] == op:
            return body


async def user(url: str, name: str, device: str = "") -> Client:
    client = Client(url)
    if not device:
        await client.register(name, PASSWORD)
    await client.login(name, PASSWORD, device)
    return client
