"""HTTP routes: accounts, sessions, profiles, devices."""

from __future__ import annotations

from typing import Any

from ..errors import Unauthorized
from ..im import accounts
from .routes import Call, Param, Route
from .schemas import PROFILE_FIELDS, STRING, array, obj, ref


async def register(call: Call) -> dict[str, Any]:
    body = dict(call.body)
    username, password = body.pop("username"), body.pop("password")
    return await accounts.register(call.state.ctx, username, password, **body)


async def login(call: Call) -> dict[str, Any]:
    state = call.state
    username = call.body["username"]
    key = f"{username.strip().lower()}|{call.request.remote}"
    state.check_login(key)
    try:
        session = await accounts.login(
            state.ctx, username, call.body["password"], call.body.get("device_name", "")
        )
    except Unauthorized:
        state.failed_login(key)
        raise
    return {
        "token": session.token,
        "user": session.user,
        "device": session.device,
        "expires_at": session.expires_at,
    }


async def logout(call: Call) -> None:
    assert call.session is not None
    await accounts.sign_out(call.state.ctx, call.user, call.session.device)


async def me(call: Call) -> dict[str, Any]:
    return await accounts.profile(call.state.ctx, call.user)


async def update_me(call: Call) -> dict[str, Any]:
    return await accounts.update_profile(call.state.ctx, call.user, call.body)


async def change_password(call: Call) -> None:
    ctx = call.state.ctx
    await accounts.verify_password(ctx, call.user, call.body["old_password"])
    assert call.session is not None
    await accounts.set_password(
        ctx, call.user, call.body["new_password"], keep_device=call.session.device
    )


async def user_profile(call: Call) -> dict[str, Any]:
    return await accounts.profile(call.state.ctx, call.path("username"))


async def users(call: Call) -> list[dict[str, Any]]:
    limit = call.query.get("limit", 100)
    return await accounts.users(call.state.ctx, after=call.query.get("after"), limit=limit)


async def devices(call: Call) -> list[dict[str, Any]]:
    assert call.session is not None
    found = await accounts.devices(call.state.ctx, call.user)
    for device in found:
        device["current"] = device["device"] == call.session.device
    return found


async def sign_out_device(call: Call) -> None:
    await accounts.sign_out(call.state.ctx, call.user, call.path("device"))


ROUTES = [
    Route(
        "POST",
        "/api/register",
        "Create an account",
        register,
        tag="accounts",
        body=obj(
            ("username", "password"), True, username=STRING, password=STRING, **PROFILE_FIELDS
        ),
        reply=ref("Profile"),
        status=201,
        auth=False,
    ),
    Route(
        "POST",
        "/api/login",
        "Log in: a new device with its own session token (failed attempts are rate limited)",
        login,
        tag="accounts",
        body=obj(
            ("username", "password"), True, username=STRING, password=STRING, device_name=STRING
        ),
        reply=ref("Login"),
        auth=False,
    ),
    Route("POST", "/api/logout", "End this device's session", logout, tag="accounts", status=204),
    Route("GET", "/api/me", "Your profile", me, tag="accounts", reply=ref("Profile")),
    Route(
        "PATCH",
        "/api/me",
        "Change your profile",
        update_me,
        tag="accounts",
        body=obj((), True, **PROFILE_FIELDS),
        reply=ref("Profile"),
    ),
    Route(
        "PUT",
        "/api/me/password",
        "Change your password (other sessions stay valid)",
        change_password,
        tag="accounts",
        body=obj(("old_password", "new_password"), True, old_password=STRING, new_password=STRING),
        status=204,
    ),
    Route(
        "GET",
        "/api/users",
        "Users in username order",
        users,
        tag="accounts",
        query=(
            Param("after", "string", "the last username of the previous page"),
            Param("limit", "integer", "page size, 1 to 1000 (default 100)"),
        ),
        reply=array(ref("Profile")),
    ),
    Route(
        "GET",
        "/api/users/{username}",
        "A user's public profile",
        user_profile,
        tag="accounts",
        reply=ref("Profile"),
    ),
    Route(
        "GET", "/api/devices", "Your devices", devices, tag="accounts", reply=array(ref("Device"))
    ),
    Route(
        "DELETE",
        "/api/devices/{device}",
        "Sign a device out: its token stops working, its sockets close with 4003",
        sign_out_device,
        tag="accounts",
        status=204,
    ),
]
