"""Accounts, profiles, devices and login sessions.

A user's public profile is ``user:<u>``; the password hash (Argon2id) lives
apart in ``auth:<u>`` so that no profile read can leak it. Each login creates
a device ``device:<u>:<d>`` with its own inbox cursor, and a random session
token of which only the SHA-256 is stored (``token:<hash>``), with an expiry.
Signing a device out deletes both; its token stops working at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import Conflict, InvalidInput, NotFound, Unauthorized
from ..timeline import Append
from . import access, names
from .context import RECORD_PAGE, Context, remember
from .events import SessionRevoked

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 128
MAX_DISPLAY_NAME_CHARS = 64
MAX_SIGNATURE_CHARS = 200
MAX_GENDER_CHARS = 32
MAX_DEVICE_NAME_CHARS = 64
DM_POLICIES = ("anyone", "contacts")
PROFILE_FIELDS = ("display_name", "age", "gender", "signature", "dm_policy")


@dataclass(frozen=True, slots=True)
class Session:
    """An authenticated device. ``token`` is set only right after login."""

    user: str
    device: str
    expires_at: float
    token: str | None = None


def _hasher(ctx: Context) -> PasswordHasher:
    return PasswordHasher(
        time_cost=ctx.settings.password_time_cost, memory_cost=ctx.settings.password_memory_kib
    )


def _password(raw: object) -> str:
    if not isinstance(raw, str) or not MIN_PASSWORD_CHARS <= len(raw) <= MAX_PASSWORD_CHARS:
        raise InvalidInput(
            f"a password is {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters",
            field="password",
        )
    return raw


def profile_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Check editable profile fields; unknown fields are an error."""
    unknown = set(fields) - set(PROFILE_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown profile fields: {', '.join(sorted(unknown))}")
    checked: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "age":
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 150
            ):
                raise InvalidInput("age is a whole number from 0 to 150", field="age")
        elif key == "dm_policy":
            if value not in DM_POLICIES:
                raise InvalidInput("dm_policy is 'anyone' or 'contacts'", field="dm_policy")
        else:
            limit = {
                "display_name": MAX_DISPLAY_NAME_CHARS,
                "gender": MAX_GENDER_CHARS,
                "signature": MAX_SIGNATURE_CHARS,
            }[key]
            if not isinstance(value, str) or len(value) > limit:
                raise InvalidInput(f"{key} is text of at most {limit} characters", field=key)
            value = value.strip()
        checked[key] = value
    return checked


async def register(ctx: Context, username: str, password: str, **profile: Any) -> dict[str, Any]:
    """Create an account. Returns the public profile.

    Raises:
        InvalidInput: bad username, password or profile field.
        Conflict: the username is taken.
    """
    username = names.username(username)
    password = _password(password)
    fields = profile_fields(profile)
    fields.setdefault("display_name", username)
    fields["display_name"] = fields["display_name"] or username
    taken = Conflict(f"the username {username!r} is taken", field="username")
    if await ctx.store.get_meta(f"user:{username}") is not None:
        raise taken
    hashed = await asyncio.to_thread(_hasher(ctx).hash, password)
    if not await claim(ctx, "users", username):
        raise taken
    await ctx.store.put_meta(f"auth:{username}", {"password": hashed})
    record = {
        "display_name": username,
        "age": None,
        "gender": "",
        "signature": "",
        "dm_policy": "anyone",
        **fields,
        "created_at": ctx.now(),
    }
    await ctx.store.put_meta(f"user:{username}", record)
    remember(ctx.known_users, username)
    return {"username": username, **record}


async def claim(ctx: Context, registry: str, name: str) -> bool:
    """Take ``name`` in ``registry`` for good; False when it was taken already.

    Atomic on every backend and across nodes: the claim is an entry of the
    timeline ``registry:<registry>`` whose client id is the name, and the
    store writes an entry per client id only once.
    """
    batch = await ctx.store.append_many(
        [Append(f"registry:{registry}", {"name": name, "at": ctx.now()}, client_id=name)]
    )
    return not batch.replayed


async def verify_password(ctx: Context, username: object, password: object) -> str:
    """The normalised username when the password is right.

    Raises:
        Unauthorized: wrong username or password (the same error for both).
    """
    wrong = Unauthorized("wrong username or password")
    try:
        username = names.username(username)
    except InvalidInput:
        raise wrong from None
    auth = await ctx.store.get_meta(f"auth:{username}")
    if auth is None or not isinstance(password, str):
        raise wrong
    try:
        await asyncio.to_thread(_hasher(ctx).verify, auth["password"], password)
    except (VerificationError, InvalidHashError):
        raise wrong from None
    return username


async def login(ctx: Context, username: str, password: str, device_name: str = "") -> Session:
    """Check the password and open a session on a new device.

    Raises:
        Unauthorized: wrong username or password.
    """
    username = await verify_password(ctx, username, password)
    if not isinstance(device_name, str) or len(device_name) > MAX_DEVICE_NAME_CHARS:
        raise InvalidInput(f"a device name is at most {MAX_DEVICE_NAME_CHARS} characters")
    device = secrets.token_hex(8)
    token = secrets.token_urlsafe(32)
    digest = _digest(token)
    now = ctx.now()
    expires_at = now + ctx.settings.session_ttl
    # A new device starts at the beginning of the inbox, so it receives what
    # arrived while the user had no device online (as far back as the inbox
    # keeps). A client that prefers to start from the conversation list may
    # sync from the inbox head instead.
    await ctx.store.put_meta(
        f"device:{username}:{device}",
        {"name": device_name, "created_at": now, "cursor": 0, "token": digest},
    )
    await ctx.store.put_meta(
        f"token:{digest}", {"user": username, "device": device, "expires_at": expires_at}
    )
    return Session(username, device, expires_at, token)


async def authenticate(ctx: Context, token: object) -> Session:
    """The session a token belongs to.

    Raises:
        Unauthorized: unknown, revoked or expired token.
    """
    if not isinstance(token, str) or not token or len(token) > 256:
        raise Unauthorized("a session token is required")
    record = await ctx.store.get_meta(f"token:{_digest(token)}")
    if record is None:
        raise Unauthorized("the session is not valid; log in again")
    if record["expires_at"] <= ctx.now():
        raise Unauthorized("the session has expired; log in again")
    return Session(record["user"], record["device"], record["expires_at"])


async def devices(ctx: Context, user: str) -> list[dict[str, Any]]:
    prefix = f"device:{user}:"
    return [
        {
            "device": record_id.removeprefix(prefix),
            "name": record.get("name", ""),
            "created_at": record.get("created_at"),
            "cursor": record.get("cursor", 0),
        }
        for record_id, record in await ctx.records(prefix)
    ]


async def sign_out(ctx: Context, user: str, device: str) -> None:
    """End a device's session (logout, or signing out another device).

    Raises:
        NotFound: the user has no such device.
    """
    key = f"device:{user}:{device}"
    record = await ctx.store.get_meta(key)
    if record is None:
        raise NotFound("no such device")
    await ctx.store.delete_meta(f"token:{record['token']}")
    await ctx.store.delete_meta(key)
    ctx.publish(SessionRevoked(user, device))


async def purge_expired_sessions(ctx: Context) -> int:
    """Delete the token and device records of sessions that have expired (a
    login that was never signed out leaves them behind). Returns how many."""
    now = ctx.now()
    removed = 0
    after: str | None = None
    while True:
        page = await ctx.store.find_meta("token:", after=after, limit=RECORD_PAGE)
        for record_id, record in page:
            if record.get("expires_at", 0) <= now:
                # The device first: a token left by a crash here is purged next time.
                await ctx.store.delete_meta(f"device:{record['user']}:{record['device']}")
                await ctx.store.delete_meta(record_id)
                removed += 1
        if len(page) < RECORD_PAGE:
            return removed
        after = page[-1][0]


async def profile(ctx: Context, username: str) -> dict[str, Any]:
    """A user's public profile.

    Raises:
        NotFound: no such user.
    """
    username = names.username(username)
    record = await ctx.store.get_meta(f"user:{username}")
    if record is None:
        raise NotFound(f"no user {username!r}")
    return {"username": username, **record}


async def update_profile(ctx: Context, user: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Change the owner's profile fields. Returns the new profile."""
    checked = profile_fields(fields)
    if "display_name" in checked and not checked["display_name"]:
        raise InvalidInput("display_name cannot be empty", field="display_name")
    if checked:
        await ctx.store.update_meta(f"user:{user}", checked)
        access.forget_dm_rules(ctx, user)
    return await profile(ctx, user)


async def set_password(
    ctx: Context, username: str, password: str, *, keep_device: str | None = None
) -> int:
    """Set a new password (the owner after re-checking the old one, or an
    operator) and sign out every device of the user but ``keep_device`` (the
    one the owner changed it from): whoever knew the old password is out.
    Returns how many devices were signed out."""
    username = names.username(username)
    await profile(ctx, username)
    hashed = await asyncio.to_thread(_hasher(ctx).hash, _password(password))
    await ctx.store.put_meta(f"auth:{username}", {"password": hashed})
    others = [d["device"] for d in await devices(ctx, username) if d["device"] != keep_device]
    for device in others:
        with contextlib.suppress(NotFound):  # signed out meanwhile
            await sign_out(ctx, username, device)
    return len(others)


async def users(
    ctx: Context, *, after: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Users in username order (for operators and search)."""
    return [
        {"username": record_id.removeprefix("user:"), **record}
        for record_id, record in await ctx.store.find_meta(
            "user:", after=f"user:{after}" if after else None, limit=limit
        )
    ]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
