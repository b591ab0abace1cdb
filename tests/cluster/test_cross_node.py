"""A message sent on one node reaches devices on the others in real time, and
presence and typing span nodes."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
from processes import Cluster
from traffic import frame, socket, user

PUSH_WITHIN = 2.0
# A new socket's subscription takes a moment to reach every NATS server of the
# cluster (the nodes may be connected to different ones); until then a push
# to it may be missed, which sync would repair but these tests must not use.
SETTLE = 0.3


async def test_a_message_sent_on_node_a_is_pushed_to_devices_on_b_and_c(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.urls
    alice = await user(a, "xalice")
    bob_b = await user(b, "xbob")
    bob_c = await user(c, "xbob", device="second")
    try:
        on_b, on_c = await socket(bob_b, b), await socket(bob_c, c)
        on_a = await socket(alice, a)  # the sender's own device gets it too
        await asyncio.sleep(SETTLE)
        started = time.monotonic()
        sent = await alice.request(
            "POST", f"/conversations/{alice.dm('xbob')}/messages", {"text": "across"}
        )
        for ws in (on_b, on_c, on_a):
            event = (await frame(ws, "event", PUSH_WITHIN))["event"]
            assert event["message"]["text"] == "across"
            assert event["message"]["seq"] == sent["seq"]
        assert time.monotonic() - started < PUSH_WITHIN
        for ws in (on_a, on_b, on_c):
            await ws.close()
    finally:
        for client in (alice, bob_b, bob_c):
            await client.close()


async def test_presence_and_typing_cross_nodes(cluster: Cluster) -> None:
    a, b, _ = cluster.urls
    carol = await user(a, "xcarol")
    dave = await user(b, "xdave")
    try:
        await carol.add_contact("xdave")
        await dave.accept_contact("xcarol")
        on_b = await socket(dave, b)
        await asyncio.sleep(SETTLE)
        on_a = await socket(carol, a)
        # dave (node B) is told carol came online on node A
        online = await frame(on_b, "presence", PUSH_WITHIN)
        assert online == {"op": "presence", "user": "xcarol", "online": True}
        # each node answers presence queries about users on the other
        await on_b.send_str('{"op":"presence","ref":1}')
        assert (await frame(on_b, "presence_state", 2))["users"] == {"xcarol": True}
        deadline = time.monotonic() + 5 * PUSH_WITHIN
        while True:  # node A learns that dave is online on B from the bus
            await on_a.send_str('{"op":"presence","ref":2}')
            if (await frame(on_a, "presence_state", 2))["users"] == {"xdave": True}:
                break
            assert time.monotonic() < deadline, "node A never saw dave online"
        await on_a.send_str(
            orjson.dumps({"op": "typing", "conversation": carol.dm("xdave")}).decode()
        )
        typing = await frame(on_b, "typing", PUSH_WITHIN)
        assert typing["user"] == "xcarol" and typing["conversation"] == carol.dm("xdave")
        await on_a.close()
        offline = await frame(on_b, "presence", PUSH_WITHIN)
        assert offline == {"op": "presence", "user": "xcarol", "online": False}
        await on_b.close()
    finally:
        for client in (carol, dave):
            await client.close()


async def test_signing_out_a_device_on_one_node_closes_its_socket_on_another(
    cluster: Cluster,
) -> None:
    a, b, _ = cluster.urls
    erin = await user(a, "xerin")
    phone = await user(b, "xerin", device="phone")
    try:
        on_b = await socket(phone, b)
        await asyncio.sleep(SETTLE)
        assert phone.device is not None
        await erin.sign_out(phone.device)
        closed = await on_b.receive(timeout=PUSH_WITHIN)
        assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 4003
        await on_b.close()
    finally:
        await erin.close()
        await phone.close()
