"""The sans-I/O protocol core and the push hub: bytes in, operations and frames
out, with no socket and no event loop."""

from __future__ import annotations

import orjson
import pytest

from tidings.im import GroupAdvanced, InboxAdvanced, SessionRevoked, inbox_event
from tidings.server import protocol as p
from tidings.server.hub import Connection, Hub
from tidings.server.limits import Buckets, TokenBucket
from tidings.server.metrics import Metrics
from tidings.timeline import Entry


def session(**fields: object) -> p.Session:
    s = p.Session(0.0, max_frame_bytes=1024, heartbeat=30.0)
    for key, value in fields.items():
        setattr(s, key, value)
    return s


def authed() -> p.Session:
    s = session()
    s.authenticate("alice", "d1", 0)
    return s


def code_of(result: p.Op | p.Reject) -> str:
    assert isinstance(result, p.Reject), result
    return result.error.code


def test_a_send_frame_becomes_a_send_operation() -> None:
    frame = b'{"op":"send","ref":7,"conversation":"dm:alice:bob","text":"hi","client_msg_id":"c1"}'
    op = authed().receive(frame, 1.0)
    assert op == p.Send("dm:alice:bob", text="hi", client_msg_id="c1", ref=7)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"{not json", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b'{"text": "\xff\xfe"}', "bad_encoding"),
        (b'{"op": "shout"}', "unknown_op"),
        (b'{"text": "no op"}', "unknown_op"),
        (b'{"op": "send", "conversation": 5, "text": "x"}', "invalid_input"),
        (b'{"op": "send", "text": "x"}', "invalid_input"),
        (b'{"op": "sync", "after": true}', "invalid_input"),
        (b'{"op": "sync", "after": "3"}', "invalid_input"),
        (b'{"op": "presence", "users": ["a", 1]}', "invalid_input"),
        (b'{"op": "ping", "ref": {"x": 1}}', "invalid_input"),
        (b'{"op": "ping", "pad": "' + b"x" * 2000 + b'"}', "too_large"),
    ],
)
def test_bad_frames_are_rejected_with_a_stable_code(data: bytes, code: str) -> None:
    assert code_of(authed().receive(data, 1.0)) == code


def test_a_rejected_frame_keeps_its_ref_and_names_the_field() -> None:
    result = authed().receive(b'{"op": "confirm", "ref": "r1", "cursor": "x"}', 1.0)
    assert isinstance(result, p.Reject)
    assert result.ref == "r1" and result.error.details == {"field": "cursor"}


def test_text_and_bytes_frames_parse_alike() -> None:
    s = authed()
    assert s.receive('{"op":"ping","ref":"é"}', 1.0) == s.receive(
        '{"op":"ping","ref":"é"}'.encode(), 1.0
    )


def test_only_auth_passes_before_authentication_and_not_after() -> None:
    s = session()
    assert code_of(s.receive(b'{"op":"ping"}', 1.0)) == "not_authenticated"
    assert s.receive(b'{"op":"auth","token":"t"}', 1.0) == p.Auth("t")
    s.authenticate("alice", "d1", 5)
    assert code_of(s.receive(b'{"op":"auth","token":"t"}', 1.0)) == "invalid_input"
    assert s.receive(b'{"op":"ping"}', 1.0) == p.Ping()


def test_pushes_are_not_repeated_after_sync_or_push() -> None:
    s = authed()
    assert s.should_push(1)
    assert not s.should_push(1)
    s.synced(5)
    assert not s.should_push(4) and not s.should_push(5)
    assert s.should_push(6)


def test_heartbeat_pings_a_quiet_socket_and_reaps_a_silent_one() -> None:
    s = session()
    assert s.heartbeat_due(29.0) is None
    assert s.heartbeat_due(30.0) == "ping"
    assert s.heartbeat_due(31.0) is None  # one ping per interval
    s.receive(b'{"op":"auth","token":"t"}', 40.0)  # any frame is a sign of life
    assert s.heartbeat_due(69.0) is None
    assert s.heartbeat_due(70.0) == "ping"
    assert s.heartbeat_due(130.0) == "reap"


def test_typing_is_throttled_per_conversation() -> None:
    s = authed()
    assert s.may_type("dm:a:b", 0.0)
    assert not s.may_type("dm:a:b", 1.0)
    assert s.may_type("group:g1x", 1.0)
    assert s.may_type("dm:a:b", 2.5)


def message_entries(count: int) -> list[Entry]:
    body = {"kind": "text", "text": "hello 世界", "id": "m1", "from": "alice", "ts": 1.5}
    return [
        Entry(f"inbox:user{i}", 10 + i, body, 1.5, ref=("dm:alice:bob", 3)) for i in range(count)
    ]


def test_an_event_frame_is_the_inbox_event_and_the_message_is_encoded_once() -> None:
    encoder = p.EventEncoder()
    entries = message_entries(3)
    frames = [encoder.event(entry) for entry in entries]
    for entry, data in zip(entries, frames, strict=True):
        assert orjson.loads(data) == {"op": "event", "event": inbox_event(entry)}
    assert len(encoder._messages) == 1


def test_non_message_events_are_encoded_whole() -> None:
    entry = Entry("inbox:alice", 4, {"type": "read", "conversation": "dm:a:b", "seq": 2}, 1.0)
    data = p.EventEncoder().event(entry)
    assert orjson.loads(data)["event"] == {
        "inbox_seq": 4,
        "type": "read",
        "conversation": "dm:a:b",
        "seq": 2,
    }


def test_reply_frames_carry_the_ref_only_when_given() -> None:
    assert orjson.loads(p.frame("pong", None, ts=1)) == {"op": "pong", "ts": 1}
    assert orjson.loads(p.frame("pong", "x", ts=1)) == {"op": "pong", "ref": "x", "ts": 1}


# -- the hub, driven without sockets ---------------------------------------------------


def connection(user: str, device: str = "d1", limit: int = 8) -> tuple[Connection, list[int]]:
    closed: list[int] = []
    s = session()
    s.authenticate(user, device, 0)
    return Connection(f"{user}-{device}", s, limit, lambda code, _: closed.append(code)), closed


def frames(conn: Connection) -> list[dict[str, object]]:
    return [orjson.loads(data) for data, _ in conn.outbox if data is not None]


def test_hub_pushes_each_inbox_entry_to_every_socket_of_the_user() -> None:
    hub = Hub(Metrics(), max_per_user=4)
    phone, _ = connection("bob", "phone")
    laptop, _ = connection("bob", "laptop")
    other, _ = connection("carol")
    for conn in (phone, laptop, other):
        hub.add(conn)
    entry = message_entries(1)[0]
    hub.publish(InboxAdvanced("bob", (entry,)))
    hub.publish(InboxAdvanced("bob", (entry,)))  # a repeat is not pushed twice
    assert frames(phone) == frames(laptop) == [{"op": "event", "event": inbox_event(entry)}]
    assert phone.outbox[0][0] is laptop.outbox[0][0]  # the same bytes for both
    assert frames(other) == []


def test_hub_sends_group_heads_and_closes_revoked_devices() -> None:
    hub = Hub(Metrics(), max_per_user=4)
    phone, phone_closed = connection("bob", "phone")
    laptop, laptop_closed = connection("bob", "laptop")
    hub.add(phone)
    hub.add(laptop)
    hub.publish(GroupAdvanced("group:big", 9, ("bob", "nobody")))
    assert frames(phone) == [{"op": "group_head", "conversation": "group:big", "seq": 9}]
    hub.publish(SessionRevoked("bob", "laptop"))
    assert laptop_closed == [p.CLOSE_REVOKED] and phone_closed == []


async def test_hub_recheck_closes_sockets_whose_session_ended_elsewhere() -> None:
    hub = Hub(Metrics(), max_per_user=4)
    phone, phone_closed = connection("bob", "phone")
    laptop, laptop_closed = connection("bob", "laptop")
    tablet, tablet_closed = connection("bob", "tablet")
    tablet.session.expires_at = 100.0
    for conn in (phone, laptop, tablet):
        hub.add(conn)
    signed_in = {("bob", "phone"), ("bob", "tablet")}  # laptop signed out by an operator

    async def lookup(user: str, device: str) -> bool:
        return (user, device) in signed_in

    await hub.recheck(lookup, now=99.0)
    assert (phone_closed, laptop_closed, tablet_closed) == ([], [p.CLOSE_REVOKED], [])
    await hub.recheck(lookup, now=100.0)
    assert (phone_closed, tablet_closed) == ([], [p.CLOSE_UNAUTHORIZED])


def test_a_full_queue_cuts_the_socket_off_and_drops_ephemeral_frames_first() -> None:
    metrics = Metrics()
    hub = Hub(metrics, max_per_user=4)
    slow, closed = connection("bob", limit=4)
    hub.add(slow)
    for _ in range(2):
        hub.send(slow, b"{}")
    hub.send(slow, b'{"op":"typing"}', ephemeral=True)  # half full: dropped
    assert len(slow.outbox) == 2
    for _ in range(3):
        hub.send(slow, b"{}")
    assert closed == [p.CLOSE_SLOW_CONSUMER]
    assert metrics.overflows._value.get() == 1


def test_the_hub_limits_sockets_per_user_and_reports_online_changes() -> None:
    hub = Hub(Metrics(), max_per_user=2)
    first, _ = connection("bob", "a")
    second, _ = connection("bob", "b")
    assert hub.add(first) is True
    assert hub.add(second) is False
    with pytest.raises(Exception, match="at most 2"):
        hub.add(connection("bob", "c")[0])
    assert hub.remove(first) is False
    assert hub.remove(second) is True and not hub.online("bob")


def test_sweep_pings_then_reaps() -> None:
    hub = Hub(Metrics(), max_per_user=2)
    conn, closed = connection("bob")
    hub.add(conn)
    hub.sweep(30.0)
    assert list(conn.outbox) == [(None, 0.0)]
    hub.sweep(90.0)
    assert closed == [p.CLOSE_HEARTBEAT]


def test_token_buckets_refill_with_time() -> None:
    bucket = TokenBucket(rate=2.0, burst=2.0, tokens=2.0, updated=0.0)
    assert bucket.take(0.0) == 0 and bucket.take(0.0) == 0
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0
    buckets = Buckets(rate=1.0, burst=1.0, max_keys=2)
    assert buckets.take("a", 0.0) == 0 and buckets.take("a", 0.0) > 0
    assert buckets.peek("fresh", 0.0) == 0
