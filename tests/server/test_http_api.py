"""The HTTP API through a real server: routes, errors, and the OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from server_harness import PASSWORD, Harness

from tidings.client import ApiError


async def raw(server: Harness, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, server.url + path, **kwargs) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()


async def test_openapi_describes_every_route(server: Harness) -> None:
    status, doc = await raw(server, "GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for route in server.runner.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path")
        if route.method == "HEAD" or "prefix" in info:
            continue  # HEAD mirrors GET; static folders are files, not API
        served.add((route.method, re.sub(r"{(\w+)(:[^}]*)?}", r"{\1}", path)))
    assert served and served <= documented
    assert documented <= served
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for param in re.findall(r"{(\w+)}", path):
                assert any(p["name"] == param for p in op.get("parameters", [])), path


async def test_errors_are_json_with_a_stable_code(server: Harness) -> None:
    status, body = await raw(server, "GET", "/api/nothing-here")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await raw(server, "DELETE", "/api/register")
    assert status == 405 and body["error"]["code"] == "method_not_allowed"
    status, body = await raw(server, "POST", "/api/register", data=b"{nope")
    assert status == 400 and body["error"]["code"] == "bad_json"
    status, body = await raw(server, "POST", "/api/register", data=b'{"username": "\xff"}')
    assert status == 400 and body["error"]["code"] == "bad_encoding"
    status, body = await raw(server, "POST", "/api/register", json={"username": "x", "pw": 1})
    assert status == 400 and body["error"]["code"] == "invalid_input"
    status, body = await raw(
        server, "POST", "/api/register", json={"username": 5, "password": PASSWORD}
    )
    assert status == 400 and body["error"]["details"] == {"field": "username"}


async def test_request_bodies_over_the_limit_are_refused(make_server: Any) -> None:
    server = await make_server(max_body_bytes=1000)
    body = {"username": "alice", "password": PASSWORD, "signature": "x" * 2000}
    status, reply = await raw(server, "POST", "/api/register", json=body)
    assert status == 413 and reply["error"]["code"] == "too_large"
    assert await server.store.get_meta("user:alice") is None


async def test_profile_and_users(server: Harness) -> None:
    alice = await server.user("alice")
    await server.user("bob")
    me = await alice.request("PATCH", "/me", {"display_name": "Alice 爱丽丝", "age": 30})
    assert me["display_name"] == "Alice 爱丽丝" and me["age"] == 30
    assert (await alice.me())["display_name"] == "Alice 爱丽丝"
    bob_profile = await alice.profile("bob")
    assert bob_profile["username"] == "bob" and "password" not in bob_profile
    listed = await alice.request("GET", "/users", limit=10)
    assert [u["username"] for u in listed] == ["alice", "bob"]
    with pytest.raises(ApiError) as missing:
        await alice.profile("nobody")
    assert missing.value.status == 404


async def test_password_change_and_logout(server: Harness) -> None:
    alice = await server.user("alice")
    elsewhere = await server.user("alice", register=False, device="old phone")
    with pytest.raises(ApiError, match="unauthorized"):
        await alice.request(
            "PUT", "/me/password", {"old_password": "wrong pass", "new_password": "brand new pass"}
        )
    await alice.request(
        "PUT", "/me/password", {"old_password": PASSWORD, "new_password": "brand new pass"}
    )
    with pytest.raises(ApiError, match="unauthorized"):  # every other device is signed out
        await elsewhere.me()
    assert (await alice.me())["username"] == "alice"
    await alice.logout()
    alice.token = None
    await alice.login("alice", "brand new pass")
    stale = server.client()
    stale.token = "x"
    with pytest.raises(ApiError):
        await stale.me()


async def test_contacts_and_blocks(server: Harness) -> None:
    alice, bob = await server.user("alice"), await server.user("bob")
    assert await alice.add_contact("bob") == "outgoing"
    assert (await bob.request("GET", "/contacts"))[0]["state"] == "incoming"
    await bob.accept_contact("alice")
    assert (await alice.request("GET", "/contacts"))[0]["state"] == "accepted"
    await bob.request("PUT", "/blocks/alice")
    assert await bob.request("GET", "/blocks") == ["alice"]
    with pytest.raises(ApiError) as blocked:
        await alice.request("POST", "/conversations/dm:alice:bob/messages", {"text": "hi"})
    assert blocked.value.code == "forbidden"
    await bob.request("DELETE", "/blocks/alice")
    await alice.request("POST", "/conversations/dm:alice:bob/messages", {"text": "hi"})


async def test_groups_and_membership(server: Harness) -> None:
    alice, bob, carol = [await server.user(n) for n in ("alice", "bob", "carol")]
    group = await alice.create_group("Rustaceans", id="rust", type="open")
    assert group["id"] == "rust" and group["member_count"] == 1
    await bob.request("POST", "/groups/rust/join")
    await alice.add_members("rust", ["carol"])
    members = await carol.request("GET", "/groups/rust/members")
    assert {m["username"]: m["role"] for m in members} == {
        "alice": "owner",
        "bob": "member",
        "carol": "member",
    }
    await alice.request("PUT", "/groups/rust/members/bob/role", {"role": "admin"})
    await alice.request("PATCH", "/groups/rust", {"description": "crabs"})
    await bob.request("DELETE", "/groups/rust/members/carol")
    with pytest.raises(ApiError) as gone:
        await carol.request("POST", "/conversations/group:rust/messages", {"text": "hi"})
    assert gone.value.code == "forbidden"
    await alice.request("POST", "/groups/rust/owner", {"username": "bob"})
    await alice.request("POST", "/groups/rust/leave")
    info = await bob.request("GET", "/groups/rust")
    assert info["owner"] == "bob" and info["member_count"] == 1
    assert [g["id"] for g in await bob.request("GET", "/groups")] == ["rust"]
    assert await alice.request("GET", "/groups") == []


async def test_history_recall_edit_and_read_over_http(server: Harness) -> None:
    alice, bob = await server.user("alice"), await server.user("bob")
    path = "/conversations/dm:alice:bob/messages"
    acks = [await alice.request("POST", path, {"text": f"m{i}"}) for i in range(5)]
    page, more = await bob.history("dm:alice:bob", limit=2)
    assert [m["text"] for m in page] == ["m4", "m3"] and more
    page, more = await bob.history("dm:alice:bob", before=page[-1]["seq"], limit=10)
    assert [m["text"] for m in page] == ["m2", "m1", "m0"] and not more
    await alice.request("PATCH", f"{path}/{acks[0]['seq']}", {"text": "m0!"})
    await alice.request("POST", f"{path}/{acks[1]['seq']}/recall")
    page, _ = await bob.history("dm:alice:bob", direction="forward", limit=2)
    assert page[0]["text"] == "m0!" and page[1]["recalled"] is True
    assert await bob.mark_read("dm:alice:bob", acks[-1]["seq"]) == acks[-1]["seq"]
    [summary] = await bob.conversations()
    assert summary["unread"] == 0
    with pytest.raises(ApiError) as outsider:
        carol = await server.user("carol")
        await carol.history("dm:alice:bob")
    assert outsider.value.code == "forbidden"


async def test_http_sync_and_confirm(server: Harness) -> None:
    alice, bob = await server.user("alice"), await server.user("bob")
    await alice.request("POST", "/conversations/dm:alice:bob/messages", {"text": "hi"})
    result = await bob.request("GET", "/sync")
    assert [e["message"]["text"] for e in result["events"]] == ["hi"]
    assert (await bob.request("POST", "/sync/confirm", {"cursor": result["cursor"]}))[
        "cursor"
    ] == result["cursor"]
    assert (await bob.request("GET", "/sync"))["events"] == []


async def test_operator_endpoints(make_server: Any, tmp_path: Any) -> None:
    server = await make_server(web_dir=str(tmp_path / "not-built"))
    alice = await server.user("alice")
    live = await server.live(alice)
    await live.send(alice.dm("alice"), "note")
    await live.next(timeout=5)
    status, health = await raw(server, "GET", "/healthz")
    assert status == 200 and health == {"status": "ok", "connections": 1}
    status, text = await raw(server, "GET", "/metrics")
    assert status == 200
    for name in (
        "tidings_connections 1.0",
        "tidings_messages_accepted_total 1.0",
        "tidings_pushes_total",
        "tidings_send_to_commit_seconds_bucket",
        "tidings_commit_to_push_seconds_bucket",
        "tidings_outbound_overflows_total 0.0",
        "tidings_database_errors_total 0.0",
    ):
        assert name in text
    status, page = await raw(server, "GET", "/")
    assert status == 200 and "web client" in page


async def test_the_web_client_is_served_when_built(make_server: Any, tmp_path: Any) -> None:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<html>the app</html>")
    (dist / "assets" / "app.js").write_text("console.log(1)")
    (dist / "favicon.svg").write_text("<svg/>")
    server = await make_server(web_dir=str(dist))
    assert await raw(server, "GET", "/") == (200, "<html>the app</html>")
    assert (await raw(server, "GET", "/assets/app.js"))[1] == "console.log(1)"
    assert (await raw(server, "GET", "/favicon.svg"))[0] == 200


async def test_request_ids_are_returned(server: Harness) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/healthz", headers={"X-Request-Id": "abc-1"}) as r:
            assert r.headers["X-Request-Id"] == "abc-1"
        async with http.get(server.url + "/healthz") as r:
            assert len(r.headers["X-Request-Id"]) == 12
