"""The bus between nodes: its encoding, presence table, bounded buffer, and the
workers' relay carrying deliveries between two buses over a real Unix socket."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import pytest
from server_harness import FakeClock

from tidings.errors import InvalidInput
from tidings.im import Delivery, GroupAdvanced, InboxAdvanced, SessionRevoked
from tidings.server import bus as b
from tidings.server import bus_codec as codec
from tidings.server.bus_nats import NatsBus
from tidings.server.bus_relay import Relay, RelayBus
from tidings.timeline import Entry


class Recorder:
    def __init__(self, users: Iterable[str] = ()) -> None:
        self.deliveries: list[Delivery] = []
        self.frames: list[tuple[str, bytes]] = []
        self.users = list(users)
        self.arrived = asyncio.Event()

    def deliver(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        self.arrived.set()

    def deliver_frame(self, user: str, frame: bytes) -> None:
        self.frames.append((user, frame))
        self.arrived.set()

    def local_users(self) -> list[str]:
        return self.users


ENTRY = Entry("inbox:bob", 7, {"id": "m1", "text": "你好"}, 1700.5, None, ("dm:alice:bob", 3))


@pytest.mark.parametrize(
    "delivery",
    [
        InboxAdvanced("bob", (ENTRY,)),
        InboxAdvanced("a.b", (Entry("inbox:a.b", 1, {"type": "contact"}, 1.0, "c1"),)),
        GroupAdvanced("group:rust", 42, ("alice", "bob")),
        SessionRevoked("bob", "dev1"),
    ],
)
def test_deliveries_round_trip_through_the_encoding(delivery: Delivery) -> None:
    [(subject, payload)] = codec.encode(delivery)
    assert codec.decode(payload) == delivery
    assert " " not in subject and ".." not in subject


def test_a_huge_group_head_is_split_under_the_payload_limit() -> None:
    members = tuple(f"user{i:06d}" for i in range(25_000))
    messages = codec.encode(GroupAdvanced("group:big", 9, members))
    assert len(messages) == 3
    assert all(len(payload) < 1024 * 1024 for _, payload in messages)
    heads = [codec.decode(payload) for _, payload in messages]
    assert all(isinstance(h, GroupAdvanced) and h.seq == 9 for h in heads)
    assert [m for h in heads if isinstance(h, GroupAdvanced) for m in h.members] == list(members)


def test_subjects_name_users_and_groups_safely() -> None:
    assert codec.user_subject("bob") == "tidings.user.bob"
    assert codec.user_subject("a.b") == "tidings.user.a~b"  # "." separates NATS tokens
    assert codec.group_subject("group:rust") == "tidings.group.rust"
    subject, payload = codec.encode_frame("bob", b'{"op":"typing"}')
    assert subject == "tidings.user.bob" and codec.decode(payload) == ("bob", b'{"op":"typing"}')


def test_presence_of_other_nodes_expires_when_they_go_silent() -> None:
    clock = FakeClock()
    mine, theirs = b.Presence("a", clock), b.Presence("b", clock)
    assert mine.report(theirs.message(on=["bob"], hello=True)) is True
    assert mine.online("bob") and not mine.online("carol")
    mine.report(mine.message(on=["carol"]))  # its own reports are ignored
    assert not mine.online("carol")
    clock.advance(b.PRESENCE_INTERVAL * b.PRESENCE_TTL_FACTOR + 1)
    assert not mine.online("bob")
    mine.expire()
    mine.report(theirs.message(on=["bob"]))
    mine.report(theirs.message(off=["bob"]))
    assert not mine.online("bob")


async def test_a_bus_that_cannot_connect_keeps_a_bounded_buffer() -> None:
    bus = NatsBus(["nats://127.0.0.1:1"])  # nothing listens there
    await bus.start(Recorder())
    try:
        for seq in range(b.BUFFER + 10):
            bus.publish(InboxAdvanced("bob", (Entry("inbox:bob", seq + 1, {}, 1.0),)))
        assert bus.dropped >= 10 and not bus.connected.is_set()
    finally:
        await bus.close()


def test_open_bus_knows_its_schemes() -> None:
    assert isinstance(b.open_bus(""), b.LocalBus)
    assert isinstance(b.open_bus("nats://127.0.0.1:4222,nats://127.0.0.1:4223"), NatsBus)
    assert isinstance(b.open_bus("relay:/tmp/x.sock"), RelayBus)
    with pytest.raises(InvalidInput):
        b.open_bus("redis://127.0.0.1")


async def test_the_relay_carries_deliveries_frames_and_presence_between_workers(
    tmp_path: Path,
) -> None:
    relay = Relay(str(tmp_path / "relay.sock"))
    await relay.start()
    first, second = RelayBus(relay.path), RelayBus(relay.path)
    got_first, got_second = Recorder(["alice"]), Recorder()
    await first.start(got_first)
    await second.start(got_second)
    try:
        await asyncio.wait_for(first.connected.wait(), 5)
        await asyncio.wait_for(second.connected.wait(), 5)
        first.watch("alice", True)
        first.publish(InboxAdvanced("bob", (ENTRY,)))
        first.relay("bob", b'{"op":"typing","user":"alice"}')
        async with asyncio.timeout(5):
            while len(got_second.deliveries) + len(got_second.frames) < 2:
                got_second.arrived.clear()
                await got_second.arrived.wait()
            while not second.online_elsewhere("alice"):
                await asyncio.sleep(0.01)
        assert got_second.deliveries == [InboxAdvanced("bob", (ENTRY,))]
        assert got_second.frames == [("bob", b'{"op":"typing","user":"alice"}')]
        assert got_first.deliveries == [] and not first.online_elsewhere("alice")
        first.watch("alice", False)
        async with asyncio.timeout(5):
            while second.online_elsewhere("alice"):
                await asyncio.sleep(0.01)
    finally:
        await first.close()
        await second.close()
        await relay.close()
