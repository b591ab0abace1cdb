"""HTTP routes: contacts, blocks, groups and membership."""

from __future__ import annotations

from typing import Any

from ..im import contacts, groups, names
from .routes import Call, Route
from .schemas import STRING, USERNAMES, array, obj, ref

STATE = obj(("state",), state=STRING)


async def contact_list(call: Call) -> list[dict[str, Any]]:
    return await contacts.contacts(call.state.ctx, call.user)


async def contact_request(call: Call) -> dict[str, Any]:
    return {"state": await contacts.request(call.state.ctx, call.user, call.path("username"))}


async def contact_accept(call: Call) -> None:
    await contacts.accept(call.state.ctx, call.user, call.path("username"))


async def contact_decline(call: Call) -> None:
    await contacts.decline(call.state.ctx, call.user, call.path("username"))


async def contact_remove(call: Call) -> None:
    await contacts.remove(call.state.ctx, call.user, call.path("username"))


async def block_list(call: Call) -> list[str]:
    return await contacts.blocked(call.state.ctx, call.user)


async def block(call: Call) -> None:
    await contacts.block(call.state.ctx, call.user, call.path("username"))


async def unblock(call: Call) -> None:
    await contacts.unblock(call.state.ctx, call.user, call.path("username"))


def _gid(call: Call) -> str:
    return names.group_id(call.path("gid"))


async def group_list(call: Call) -> list[dict[str, Any]]:
    return await groups.groups_of(call.state.ctx, call.user)


async def group_create(call: Call) -> dict[str, Any]:
    body = call.body
    return await groups.create(
        call.state.ctx,
        call.user,
        body["name"],
        type=body.get("type", "closed"),
        description=body.get("description", ""),
        gid=body.get("id"),
        members=body.get("members"),
    )


async def group_info(call: Call) -> dict[str, Any]:
    return await groups.info(call.state.ctx, call.user, _gid(call))


async def group_update(call: Call) -> dict[str, Any]:
    return await groups.update(call.state.ctx, call.user, _gid(call), **call.body)


async def member_list(call: Call) -> list[dict[str, Any]]:
    return await groups.members(call.state.ctx, call.user, _gid(call))


async def member_add(call: Call) -> None:
    await groups.add_members(call.state.ctx, call.user, _gid(call), call.body["users"])


async def member_remove(call: Call) -> None:
    user = names.username(call.path("username"))
    if user == call.user:
        await groups.leave(call.state.ctx, call.user, _gid(call))
    else:
        await groups.remove_member(call.state.ctx, call.user, _gid(call), user)


async def member_role(call: Call) -> None:
    user = names.username(call.path("username"))
    await groups.set_role(call.state.ctx, call.user, _gid(call), user, call.body["role"])


async def owner_transfer(call: Call) -> None:
    new_owner = names.username(call.body["username"])
    await groups.transfer_ownership(call.state.ctx, call.user, _gid(call), new_owner)


async def join(call: Call) -> None:
    await groups.join(call.state.ctx, call.user, _gid(call))


async def leave(call: Call) -> None:
    await groups.leave(call.state.ctx, call.user, _gid(call))


GROUP_FIELDS = {
    "name": STRING,
    "type": {"type": "string", "enum": ["open", "closed"]},
    "description": STRING,
}

ROUTES = [
    Route(
        "GET",
        "/api/contacts",
        "Your contacts and pending requests",
        contact_list,
        tag="contacts",
        reply=array(ref("Contact")),
    ),
    Route(
        "POST",
        "/api/contacts/{username}",
        "Ask to become contacts (accepts when they asked first)",
        contact_request,
        tag="contacts",
        reply=STATE,
    ),
    Route(
        "POST",
        "/api/contacts/{username}/accept",
        "Accept a contact request",
        contact_accept,
        tag="contacts",
        status=204,
    ),
    Route(
        "POST",
        "/api/contacts/{username}/decline",
        "Decline a contact request",
        contact_decline,
        tag="contacts",
        status=204,
    ),
    Route(
        "DELETE",
        "/api/contacts/{username}",
        "Remove a contact or withdraw a request",
        contact_remove,
        tag="contacts",
        status=204,
    ),
    Route("GET", "/api/blocks", "Users you blocked", block_list, tag="contacts", reply=USERNAMES),
    Route(
        "PUT",
        "/api/blocks/{username}",
        "Block a user: no direct messages or requests from them",
        block,
        tag="contacts",
        status=204,
    ),
    Route(
        "DELETE", "/api/blocks/{username}", "Unblock a user", unblock, tag="contacts", status=204
    ),
    Route(
        "GET",
        "/api/groups",
        "Groups you are a member of",
        group_list,
        tag="groups",
        reply=array(ref("Group")),
    ),
    Route(
        "POST",
        "/api/groups",
        "Create a group (you are its owner)",
        group_create,
        tag="groups",
        status=201,
        reply=ref("Group"),
        body=obj(("name",), True, id=STRING, members=USERNAMES, **GROUP_FIELDS),
    ),
    Route(
        "GET",
        "/api/groups/{gid}",
        "A group (members; anyone for open groups)",
        group_info,
        tag="groups",
        reply=ref("Group"),
    ),
    Route(
        "PATCH",
        "/api/groups/{gid}",
        "Change a group (owner or admin)",
        group_update,
        tag="groups",
        reply=ref("Group"),
        body=obj((), True, **GROUP_FIELDS),
    ),
    Route(
        "GET",
        "/api/groups/{gid}/members",
        "Current members and their roles",
        member_list,
        tag="groups",
        reply=array(ref("Member")),
    ),
    Route(
        "POST",
        "/api/groups/{gid}/members",
        "Add members (owner or admin; any member of an open group)",
        member_add,
        tag="groups",
        status=204,
        body=obj(("users",), True, users=USERNAMES),
    ),
    Route(
        "DELETE",
        "/api/groups/{gid}/members/{username}",
        "Remove a member (yourself: leave)",
        member_remove,
        tag="groups",
        status=204,
    ),
    Route(
        "PUT",
        "/api/groups/{gid}/members/{username}/role",
        "Make a member an admin or a plain member (owner only)",
        member_role,
        tag="groups",
        status=204,
        body=obj(("role",), True, role={"type": "string", "enum": ["admin", "member"]}),
    ),
    Route(
        "POST",
        "/api/groups/{gid}/owner",
        "Hand the group to another member (owner only)",
        owner_transfer,
        tag="groups",
        status=204,
        body=obj(("username",), True, username=STRING),
    ),
    Route("POST", "/api/groups/{gid}/join", "Join an open group", join, tag="groups", status=204),
    Route("POST", "/api/groups/{gid}/leave", "Leave a group", leave, tag="groups", status=204),
]
