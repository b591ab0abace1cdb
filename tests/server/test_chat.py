"""End to end: people chatting through a real server with the Python client."""

from __future__ import annotations

from typing import Any

import pytest
from server_harness import Harness


@pytest.fixture
def server(any_server: Harness) -> Harness:
    """Every test of this module runs on SQLite and on PostgreSQL."""
    return any_server


async def test_two_users_chat_in_real_time(server: Harness) -> None:
    alice, bob = await server.user("alice"), await server.user("bob")
    alice_live, bob_live = await server.live(alice), await server.live(bob)
    conversation = alice.dm("bob")

    ack = await alice_live.send(conversation, "hi bob")
    assert ack["seq"] == 1 and ack["duplicate"] is False

    got = await bob_live.next(timeout=5)
    assert got["type"] == "message"
    assert got["message"]["text"] == "hi bob" and got["message"]["from"] == "alice"
    assert got["message"]["seq"] == ack["seq"] and got["message"]["id"] == ack["id"]
    echo = await alice_live.next(timeout=5)  # the sender's own inbox too
    assert echo["message"]["id"] == ack["id"]

    await bob_live.send(conversation, "hello alice")
    reply = await alice_live.next(timeout=5)
    assert reply["message"]["text"] == "hello alice"


async def test_a_message_sent_while_offline_arrives_when_the_device_returns(
    server: Harness,
) -> None:
    alice, bob = await server.user("alice"), await server.user("bob")
    bob_live = await server.live(bob)
    await bob_live.close()  # bob's device goes offline

    alice_live = await server.live(alice)
    sent = [await alice_live.send(alice.dm("bob"), f"while you were out {i}") for i in range(3)]

    back = await server.live(bob)  # the same device reconnects: it syncs from its cursor
    got = [await back.next(timeout=5) for _ in sent]
    assert [e["message"]["id"] for e in got] == [ack["id"] for ack in sent]

    # A new login (a new device) finds them in the conversation list and history.
    tablet = await server.user("bob", register=False)
    [summary] = await tablet.conversations()
    assert summary["unread"] == 3 and summary["last_message"]["text"] == "while you were out 2"
    history, more = await tablet.history(alice.dm("bob"))
    assert [m["text"] for m in history] == [f"while you were out {i}" for i in (2, 1, 0)]
    assert more is False


async def test_two_devices_of_one_user_each_get_every_message_once(server: Harness) -> None:
    alice = await server.user("alice")
    phone = await server.user("bob", device="phone")
    laptop = await server.user("bob", register=False, device="laptop")
    alice_live = await server.live(alice)
    phone_live, laptop_live = await server.live(phone), await server.live(laptop)

    acks = [await alice_live.send(alice.dm("bob"), f"m{i}") for i in range(5)]
    # The last event each device sees is its own marker: nothing came twice before it.
    marker = await phone_live.send(alice.dm("bob"), "marker")
    for live in (phone_live, laptop_live):
        got = [await live.next(timeout=5) for _ in range(6)]
        ids = [e["message"]["id"] for e in got]
        assert ids == [ack["id"] for ack in acks] + [marker["id"]]
        seqs = [e["inbox_seq"] for e in got]
        assert seqs == sorted(set(seqs))


async def test_a_group_of_five_all_receive_every_message(server: Harness) -> None:
    names = ["ann", "ben", "cat", "dan", "eve"]
    clients = [await server.user(name) for name in names]
    group = await clients[0].create_group("five", members=names[1:])
    lives = [await server.live(client) for client in clients]

    acks = [
        await live.send(group["conversation"], f"from {name}")
        for live, name in zip(lives, names, strict=True)
    ]
    for live in lives:
        texts = []
        while len(texts) < 5:
            event = await live.next(timeout=5)
            if event["message"]["kind"] == "text":
                texts.append(event["message"]["text"])
        assert texts == [f"from {name}" for name in names]
    history, _ = await clients[4].history(group["conversation"], limit=50)
    assert [m["seq"] for m in history if m["kind"] == "text"] == [a["seq"] for a in acks][::-1]


async def test_reconnect_resumes_without_loss_or_duplicate(server: Harness) -> None:
    alice, bob = await server.user("alice"), await server.user("bob")
    alice_live, bob_live = await server.live(alice), await server.live(bob)
    conversation = alice.dm("bob")
    first = [await alice_live.send(conversation, f"a{i}") for i in range(3)]
    got = [await bob_live.next(timeout=5) for _ in first]

    # The server drops bob's socket; alice keeps sending while bob reconnects.
    [conn] = server.state.hub.connections("bob")
    conn.close(1011, "test: network drop")
    second = [await alice_live.send(conversation, f"b{i}") for i in range(3)]
    got += [await bob_live.next(timeout=5) for _ in second]
    third = await alice_live.send(conversation, "c")
    got.append(await bob_live.next(timeout=5))

    assert [e["message"]["id"] for e in got] == [a["id"] for a in [*first, *second, third]]
    assert [e["inbox_seq"] for e in got] == list(range(1, 8))
    assert bob_live.connections == 2


async def test_a_resend_after_a_lost_ack_is_not_duplicated(server: Harness) -> None:
    alice, bob = await server.user("alice"), await server.user("bob")
    alice_live = await server.live(alice)
    bob_live = await server.live(bob)
    conversation = alice.dm("bob")

    # Lose the first ack: drop it on arrival and cut the socket, as a network would.
    real = alice_live._on_frame
    lost: list[dict[str, object]] = []

    def lose_first_ack(frame: dict[str, object]) -> None:
        if frame.get("op") == "ack" and not lost:
            lost.append(frame)
            server.state.hub.connections("alice")[0].close(1011, "test: ack lost")
            return
        real(frame)

    alice_live._on_frame = lose_first_ack  # type: ignore[method-assign]
    ack = await alice_live.send(conversation, "once only", client_msg_id="c-1")
    assert lost and lost[0]["duplicate"] is False
    assert ack["duplicate"] is True and ack["seq"] == lost[0]["seq"] and ack["id"] == lost[0]["id"]
    assert alice_live.connections == 2

    history, _ = await bob.history(conversation)
    assert [m["text"] for m in history] == ["once only"]
    assert (await bob_live.next(timeout=5))["message"]["id"] == ack["id"]

    # The same id over HTTP is the same message too.
    again = await alice.request(
        "POST",
        f"/conversations/{conversation}/messages",
        {"text": "once only", "client_msg_id": "c-1"},
    )
    assert again["duplicate"] is True and again["seq"] == ack["seq"]


async def test_read_marks_reach_every_device_of_the_reader(server: Harness) -> None:
    alice = await server.user("alice")
    phone = await server.user("bob", device="phone")
    laptop = await server.user("bob", register=False, device="laptop")
    alice_live, phone_live = await server.live(alice), await server.live(phone)
    laptop_live = await server.live(laptop)
    ack = await alice_live.send(alice.dm("bob"), "read me")
    for live in (phone_live, laptop_live):
        assert (await live.next(timeout=5))["type"] == "message"

    marked = await phone_live.request("read", conversation=alice.dm("bob"), seq=ack["seq"])
    assert marked["seq"] == ack["seq"]
    for live in (phone_live, laptop_live):
        event = await live.next(timeout=5)
        assert event["type"] == "read" and event["seq"] == ack["seq"]
    [summary] = await laptop.conversations()
    assert summary["unread"] == 0


async def test_typing_and_presence_go_only_to_those_allowed(server: Harness) -> None:
    alice, bob, carol = [await server.user(n) for n in ("alice", "bob", "carol")]
    await alice.add_contact("bob")
    await bob.accept_contact("alice")
    bob_live = await server.live(bob, ephemeral=True)
    carol_live = await server.live(carol, ephemeral=True)
    alice_live = await server.live(alice, ephemeral=True)

    async def next_ephemeral() -> dict[str, Any]:
        """Bob's next frame that is not one of his inbox's contact events (those
        are synced on connecting and may arrive before or after a push)."""
        frame = await bob_live.next(timeout=5)
        while frame.get("type") == "contact":
            frame = await bob_live.next(timeout=5)
        return frame

    assert await next_ephemeral() == {"op": "presence", "user": "alice", "online": True}
    state = await alice_live.request("presence", users=["bob", "carol"])
    assert state["users"] == {"bob": True}  # carol is not a contact: not reported

    await alice_live.typing(alice.dm("bob"))
    assert await next_ephemeral() == {
        "op": "typing",
        "conversation": "dm:alice:bob",
        "user": "alice",
    }
    # carol got neither the presence nor the typing: her next frame is her own message.
    await carol_live.send(carol.dm("carol"), "note to self")
    assert (await carol_live.next(timeout=5))["type"] == "message"

    await alice_live.close()
    assert await next_ephemeral() == {"op": "presence", "user": "alice", "online": False}


async def test_signing_a_device_out_closes_its_socket(server: Harness) -> None:
    phone = await server.user("bob", device="phone")
    laptop = await server.user("bob", register=False, device="laptop")
    laptop_live = await server.live(laptop)
    await phone.sign_out(laptop.device or "")
    try:
        await laptop_live.next(timeout=5)
    except Exception as exc:  # noqa: BLE001 - asserted below
        failure = exc
    assert getattr(failure, "code", None) == "session_revoked"
    devices = await phone.devices()
    assert [d["name"] for d in devices] == ["phone"]
