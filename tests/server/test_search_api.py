"""The search routes over HTTP, on every backend: results, access control, and
bad parameters answered with 400 and a stable code."""

from __future__ import annotations

from typing import Any

import pytest
from server_harness import Harness

from tidings.client import ApiError, Client


def texts(reply: dict[str, Any]) -> list[str]:
    return ["".join(p["text"] for p in hit["snippet"]) for hit in reply["hits"]]


async def test_search_routes(any_server: Harness) -> None:
    alice = await any_server.user("alice")
    bob = await any_server.user("bob")
    carol = await any_server.user("carol")
    await alice.request("PATCH", "/me", {"display_name": "爱丽丝", "signature": "梧桐树"})
    group = await alice.create_group("梧桐读书会", type="closed", members=["bob"])
    await alice.request(
        "POST", f"/conversations/{group['conversation']}/messages", {"text": "群里讨论IM开发"}
    )
    sent = await bob.request(
        "POST", f"/conversations/{bob.dm('carol')}/messages", {"text": "私聊 IM开发"}
    )

    reply = await alice.request("GET", "/search/messages", q="IM开发")
    assert texts(reply) == ["群里讨论IM开发"]
    (hit,) = reply["hits"]
    assert hit["conversation"] == group["conversation"] and hit["from"] == "alice"
    reply = await bob.request("GET", "/search/messages", q="im开发")
    assert texts(reply) == ["私聊 IM开发", "群里讨论IM开发"]
    assert reply["hits"][0]["seq"] == sent["seq"]
    reply = await carol.request("GET", "/search/messages", q="开发")
    assert texts(reply) == ["私聊 IM开发"]  # never the group carol is not in

    users = await carol.request("GET", "/search/users", q="丽")
    assert [u["username"] for u in users] == ["alice"]
    assert await carol.request("GET", "/search/groups", q="梧桐") == []
    found = await bob.request("GET", "/search/groups", q="梧桐")
    assert [g["id"] for g in found] == [group["id"]]


async def test_a_conversation_one_may_not_read_is_forbidden(server: Harness) -> None:
    alice = await server.user("alice")
    carol = await server.user("carol")
    group = await alice.create_group("g", type="closed")
    with pytest.raises(ApiError) as caught:
        await carol.request("GET", "/search/messages", q="x", conversation=group["conversation"])
    assert (caught.value.status, caught.value.code) == (403, "forbidden")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": "  "}, "q"),
        ({"q": "x", "limit": "0"}, "limit"),
        ({"q": "x", "limit": "many"}, "limit"),
        ({"q": "x", "after": "yesterday"}, "after"),
        ({"q": "x", "before": "nan"}, "before"),
        ({"q": "x", "order": "random"}, "order"),
        ({"q": "x", "cursor": "%%%"}, "cursor"),
        ({"q": "x", "from": "Not A Name"}, "username"),
        ({"q": "x", "conversation": "nonsense"}, "conversation"),
    ],
)
async def test_bad_parameters(server: Harness, params: dict[str, str], field: str) -> None:
    alice = await server.user("alice")
    with pytest.raises(ApiError) as caught:
        await alice.request("GET", "/search/messages", **params)
    assert (caught.value.status, caught.value.code) == (400, "invalid_input")
    assert caught.value.details.get("field") == field


@pytest.mark.parametrize(
    "query", ['"', "*", "NEAR(a b)", "%", "'; DROP TABLE meta; --", "((", "x" * 3000]
)
async def test_hostile_queries_are_not_errors(server: Harness, query: str) -> None:
    alice = await server.user("alice")
    assert (await alice.request("GET", "/search/messages", q=query))["hits"] == []
    assert isinstance(await alice.request("GET", "/search/users", q=query), list)
    assert await alice.request("GET", "/search/groups", q=query) == []


async def test_search_needs_a_session(server: Harness) -> None:
    async with Client(server.url) as anonymous:
        with pytest.raises(ApiError) as caught:
            await anonymous.request("GET", "/search/users", q="a")
    assert caught.value.status == 401
