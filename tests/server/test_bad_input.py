"""Bad input over the socket and HTTP: a stable error code, the socket still
usable where that is safe, and nothing written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from server_harness import PASSWORD, Harness

from tidings.client import ApiError, Client


async def raw_socket(server: Harness, client: Client) -> aiohttp.ClientWebSocketResponse:
    ws = await client.http.ws_connect(client.ws_url(), params={"token": client.token or ""})
    ready = orjson.loads((await ws.receive()).data)
    assert ready["op"] == "ready"
    return ws


async def reply(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    value: dict[str, Any] = orjson.loads(msg.data)
    return value


async def still_usable(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str('{"op": "ping", "ref": "alive"}')
    pong = await reply(ws)
    assert pong["op"] == "pong" and pong["ref"] == "alive"


@pytest.fixture
async def alice(server: Harness) -> AsyncIterator[Client]:
    client = await server.user("alice")
    await server.user("bob")
    yield client


async def inbox_head(server: Harness, user: str) -> int:
    return await server.store.last_seq(f"inbox:{user}")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b'{"op": "send", ', "bad_json"),
        (b'"just a string"', "bad_json"),
        (b'{"op": "send", "conversation": "dm:alice:bob", "text": "\xc3\x28"}', "bad_encoding"),
        (b'{"op": "post", "ref": "r9"}', "unknown_op"),
        (
            b'{"op": "send", "ref": "r9", "conversation": ["dm:alice:bob"], "text": "hi"}',
            "invalid_input",
        ),
        (
            b'{"op": "send", "ref": "r9", "conversation": "dm:alice:bob", "text": 42}',
            "invalid_input",
        ),
        (
            b'{"op": "send", "ref": "r9", "conversation": "dm:alice:nobody", "text": "hi"}',
            "not_found",
        ),
        (b'{"op": "send", "ref": "r9", "conversation": "dm:bob:carol", "text": "hi"}', "forbidden"),
        (
            b'{"op": "send", "ref": "r9", "conversation": "dm:alice:bob", "text": ""}',
            "invalid_input",
        ),
        (b'{"op": "sync", "ref": "r9", "limit": 0}', "invalid_input"),
    ],
)
@pytest.mark.parametrize("kind", ["text", "binary"])
async def test_a_bad_frame_gets_an_error_and_the_socket_stays_usable(
    server: Harness, alice: Client, frame: bytes, code: str, kind: str
) -> None:
    ws = await raw_socket(server, alice)
    before = await inbox_head(server, "alice"), await inbox_head(server, "bob")
    opcode = aiohttp.WSMsgType.TEXT if kind == "text" else aiohttp.WSMsgType.BINARY
    await ws.send_frame(frame, opcode)
    error = await reply(ws)
    assert error["op"] == "error" and error["code"] == code, error
    assert error["message"]
    if b'"ref": "r9"' in frame:
        assert error["ref"] == "r9"
    await still_usable(ws)
    assert (await inbox_head(server, "alice"), await inbox_head(server, "bob")) == before
    await ws.close()


async def test_an_oversize_frame_is_refused_and_a_huge_one_closes_the_socket(
    make_server: Any,
) -> None:
    server = await make_server(max_frame_bytes=1024)
    alice = await server.user("alice")
    await server.user("bob")
    ws = await raw_socket(server, alice)
    big = orjson.dumps({"op": "send", "conversation": "dm:alice:bob", "text": "x" * 2000})
    await ws.send_bytes(big)
    error = await reply(ws)
    assert error["code"] == "too_large" and error["details"]["limit"] == 1024
    await still_usable(ws)
    await ws.send_bytes(b"x" * 5000)  # past 4x the limit: not even read
    closed = await ws.receive(timeout=5)
    assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1009
    assert await inbox_head(server, "bob") == 0


async def test_sends_over_the_rate_are_refused_until_tokens_refill(make_server: Any) -> None:
    server = await make_server(messages_per_second=1.0, message_burst=2)
    alice = await server.user("alice")
    await server.user("bob")
    ws = await raw_socket(server, alice)

    async def send(cid: str) -> dict[str, Any]:
        frame = {
            "op": "send",
            "ref": cid,
            "conversation": "dm:alice:bob",
            "text": cid,
            "client_msg_id": cid,
        }
        await ws.send_bytes(orjson.dumps(frame))
        while True:
            answer = await reply(ws)
            if answer["op"] in ("ack", "error"):
                return answer

    assert (await send("m1"))["op"] == "ack"
    assert (await send("m2"))["op"] == "ack"
    refused = await send("m3")
    assert refused["code"] == "rate_limited" and refused["details"]["retry_after"] > 0
    history, _ = await alice.history("dm:alice:bob")
    assert [m["text"] for m in history] == ["m2", "m1"]
    server.clock.advance(1.0)
    assert (await send("m3"))["op"] == "ack"
    # HTTP sends count against the same bucket.
    with pytest.raises(ApiError) as refused_http:
        await alice.request("POST", "/conversations/dm:alice:bob/messages", {"text": "http"})
    assert refused_http.value.code == "rate_limited" and refused_http.value.status == 429
    await ws.close()


async def test_a_socket_without_a_valid_token_is_closed_4001(server: Harness) -> None:
    client = server.client()
    for params in ({"token": "not-a-token"}, {}):
        ws = await client.http.ws_connect(client.ws_url(), params=params)
        if not params:
            await ws.send_str('{"op": "auth", "token": "also-wrong", "ref": 1}')
        error = await reply(ws)
        assert error["op"] == "error" and error["code"] == "unauthorized"
        closed = await ws.receive(timeout=5)
        assert closed.data == 4001
        await ws.close()


async def test_a_first_frame_other_than_auth_is_refused(server: Harness) -> None:
    client = server.client()
    ws = await client.http.ws_connect(client.ws_url())
    await ws.send_str('{"op": "sync"}')
    error = await reply(ws)
    assert error["code"] == "not_authenticated"
    assert (await ws.receive(timeout=5)).data == 4001


async def test_auth_by_first_frame_works(server: Harness) -> None:
    alice = await server.user("alice")
    ws = await alice.http.ws_connect(alice.ws_url())
    await ws.send_str(orjson.dumps({"op": "auth", "token": alice.token}).decode())
    ready = await reply(ws)
    assert ready["op"] == "ready" and ready["user"] == "alice"
    await still_usable(ws)
    await ws.close()


async def test_http_auth_failures(server: Harness) -> None:
    await server.user("alice")
    anonymous = server.client()
    with pytest.raises(ApiError) as no_token:
        await anonymous.me()
    assert (no_token.value.status, no_token.value.code) == (401, "unauthorized")
    anonymous.token = "forged"
    with pytest.raises(ApiError) as forged:
        await anonymous.me()
    assert forged.value.code == "unauthorized"
    with pytest.raises(ApiError) as wrong:
        await anonymous.login("alice", "wrong password")
    assert (wrong.value.status, wrong.value.code) == (401, "unauthorized")
    with pytest.raises(ApiError) as nobody:
        await anonymous.login("nobody", PASSWORD)
    assert nobody.value.message == wrong.value.message  # no hint of who exists


async def test_failed_logins_are_rate_limited_per_username(make_server: Any) -> None:
    server = await make_server(login_attempts=3, login_refill=30.0)
    await server.user("alice")
    guesser = server.client()
    for _ in range(3):
        with pytest.raises(ApiError, match="unauthorized"):
            await guesser.login("alice", "guess guess")
    with pytest.raises(ApiError) as limited:
        await guesser.login("alice", PASSWORD)  # even the right password
    assert limited.value.status == 429 and limited.value.code == "rate_limited"
    await server.user("bob")  # other usernames are not affected
    server.clock.advance(30.0)
    assert (await guesser.login("alice", PASSWORD))["user"] == "alice"


async def test_too_many_sockets_for_one_user(make_server: Any) -> None:
    server = await make_server(max_connections_per_user=2)
    alice = await server.user("alice")
    first, second = await raw_socket(server, alice), await raw_socket(server, alice)
    third = await alice.http.ws_connect(alice.ws_url(), params={"token": alice.token or ""})
    error = await reply(third)
    assert error["code"] == "too_many_connections"
    assert (await third.receive(timeout=5)).data == 4029
    await still_usable(first)
    for ws in (first, second, third):
        await ws.close()
