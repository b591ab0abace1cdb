from __future__ import annotations

import asyncio

import pytest
from im_harness import PASSWORD, Clock, Users

from tidings.errors import Conflict, InvalidInput, NotFound, Unauthorized
from tidings.im import Context, SessionRevoked, accounts
from tidings.im.events import Delivery


async def test_register_normalises_the_username_and_keeps_a_chinese_display_name(
    ctx: Context,
) -> None:
    profile = await accounts.register(ctx, "Alice_1", PASSWORD, display_name="梧桐 🌳")
    assert profile["username"] == "alice_1"
    assert (await accounts.profile(ctx, "ALICE_1"))["display_name"] == "梧桐 🌳"


@pytest.mark.parametrize("name", ["ab", "x" * 33, "-alice", "al ice", "阿丽", "", 42])
async def test_bad_usernames_are_refused(ctx: Context, name: object) -> None:
    with pytest.raises(InvalidInput):
        await accounts.register(ctx, name, PASSWORD)  # type: ignore[arg-type]


async def test_a_taken_username_is_a_conflict(ctx: Context, users: Users) -> None:
    await users("alice")
    with pytest.raises(Conflict):
        await accounts.register(ctx, "ALICE", PASSWORD)


async def test_the_password_is_stored_as_an_argon2_hash(ctx: Context, users: Users) -> None:
    await users("alice")
    auth = await ctx.store.get_meta("auth:alice")
    assert auth is not None
    assert auth["password"].startswith("$argon2id$")
    assert PASSWORD not in str(auth)
    assert "password" not in await accounts.profile(ctx, "alice")


@pytest.mark.parametrize("password", ["short", "x" * 129, None])
async def test_bad_passwords_are_refused(ctx: Context, password: object) -> None:
    with pytest.raises(InvalidInput):
        await accounts.register(ctx, "alice", password)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        await accounts.profile(ctx, "alice")


async def test_each_login_is_a_device_with_its_own_token(ctx: Context, users: Users) -> None:
    await users("alice")
    laptop = await accounts.login(ctx, "alice", PASSWORD, "laptop")
    phone = await accounts.login(ctx, "alice", PASSWORD, "phone")
    assert laptop.device != phone.device and laptop.token != phone.token
    assert (await accounts.authenticate(ctx, laptop.token)).device == laptop.device
    assert {d["name"] for d in await accounts.devices(ctx, "alice")} == {"laptop", "phone"}
    token_records = await ctx.store.find_meta("token:")
    assert laptop.token not in str(token_records)  # only hashes are stored


async def test_wrong_credentials_get_the_same_error(ctx: Context, users: Users) -> None:
    await users("alice")
    with pytest.raises(Unauthorized) as wrong_password:
        await accounts.login(ctx, "alice", "not the password")
    with pytest.raises(Unauthorized) as no_user:
        await accounts.login(ctx, "nobody", PASSWORD)
    assert wrong_password.value.message == no_user.value.message


async def test_signing_out_a_device_revokes_its_token_at_once(
    ctx: Context, users: Users, published: list[Delivery]
) -> None:
    await users("alice")
    laptop = await accounts.login(ctx, "alice", PASSWORD)
    phone = await accounts.login(ctx, "alice", PASSWORD)
    await accounts.sign_out(ctx, "alice", phone.device)
    with pytest.raises(Unauthorized):
        await accounts.authenticate(ctx, phone.token)
    assert (await accounts.authenticate(ctx, laptop.token)).user == "alice"
    assert SessionRevoked("alice", phone.device) in published


async def test_sessions_expire(ctx: Context, users: Users, clock: Clock) -> None:
    await users("alice")
    session = await accounts.login(ctx, "alice", PASSWORD)
    clock.advance(ctx.settings.session_ttl + 1)
    with pytest.raises(Unauthorized):
        await accounts.authenticate(ctx, session.token)


async def test_the_owner_edits_the_profile_fields(ctx: Context, users: Users) -> None:
    await users("alice")
    profile = await accounts.update_profile(
        ctx, "alice", {"display_name": "爱丽丝", "age": 30, "gender": "f", "signature": "你好"}
    )
    assert profile["display_name"] == "爱丽丝" and profile["age"] == 30
    with pytest.raises(InvalidInput):
        await accounts.update_profile(ctx, "alice", {"age": -1})
    with pytest.raises(InvalidInput):
        await accounts.update_profile(ctx, "alice", {"is_admin": True})


async def test_a_new_password_replaces_the_old(ctx: Context, users: Users) -> None:
    await users("alice")
    await accounts.set_password(ctx, "alice", "a new password")
    with pytest.raises(Unauthorized):
        await accounts.login(ctx, "alice", PASSWORD)
    assert (await accounts.login(ctx, "alice", "a new password")).user == "alice"


async def test_a_new_password_signs_out_the_other_devices(ctx: Context, users: Users) -> None:
    await users("alice")
    here = await accounts.login(ctx, "alice", PASSWORD, "laptop")
    thief = await accounts.login(ctx, "alice", PASSWORD, "stolen phone")
    assert await accounts.set_password(ctx, "alice", "a new password", keep_device=here.device) >= 1
    assert (await accounts.authenticate(ctx, here.token)).device == here.device
    with pytest.raises(Unauthorized):
        await accounts.authenticate(ctx, thief.token)
    assert [d["device"] for d in await accounts.devices(ctx, "alice")] == [here.device]
    # An operator's reset keeps no device.
    await accounts.set_password(ctx, "alice", "another password")
    with pytest.raises(Unauthorized):
        await accounts.authenticate(ctx, here.token)
    assert await accounts.devices(ctx, "alice") == []


async def test_expired_sessions_are_purged(ctx: Context, users: Users, clock: Clock) -> None:
    await users("alice")
    old = await accounts.login(ctx, "alice", PASSWORD, "old laptop")
    clock.advance(ctx.settings.session_ttl / 2)
    new = await accounts.login(ctx, "alice", PASSWORD, "new laptop")
    clock.advance(ctx.settings.session_ttl / 2)
    assert await accounts.purge_expired_sessions(ctx) == 1
    assert [d["device"] for d in await accounts.devices(ctx, "alice")] == [new.device]
    assert (await accounts.authenticate(ctx, new.token)).device == new.device
    with pytest.raises(Unauthorized):
        await accounts.authenticate(ctx, old.token)
    assert await accounts.purge_expired_sessions(ctx) == 0


async def test_one_username_registered_twice_at_once_goes_to_one_person(ctx: Context) -> None:
    results = await asyncio.gather(
        accounts.register(ctx, "alice", PASSWORD),
        accounts.register(ctx, "alice", "another password"),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "dict"]
