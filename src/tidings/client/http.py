"""The HTTP half of the Python client: accounts, contacts, groups, history."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import orjson

if TYPE_CHECKING:
    from .live import Live


class ApiError(Exception):
    """An error answer of the server: ``code`` is the stable code of docs/protocol.md."""

    def __init__(
        self, code: str, message: str, status: int = 0, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}

    @classmethod
    def from_body(cls, body: dict[str, Any], status: int = 0) -> ApiError:
        return cls(body.get("code", "error"), body.get("message", ""), status, body.get("details"))


def _segment(value: str) -> str:
    return quote(value, safe=":")


class Client:
    """A Tidings client for one user.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8081``.
        token: a session token from an earlier :meth:`login`, if any.
    """

    def __init__(self, base_url: str, *, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.user: str | None = None
        self.device: str | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(json_serialize=lambda v: orjson.dumps(v).decode())
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> Any:
        """Call ``/api{path}``. Returns the JSON reply (None for 204).

        Raises:
            ApiError: the server refused.
        """
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        query = {k: str(v) for k, v in params.items() if v is not None}
        async with self.http.request(
            method, f"{self.base_url}/api{path}", json=body, params=query, headers=headers
        ) as response:
            raw = await response.read()
            if response.status == 204:
                return None
            try:
                value = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                value = None
            if response.status >= 400:
                error = value.get("error") if isinstance(value, dict) else None
                if not isinstance(error, dict):
                    error = {"code": f"http_{response.status}", "message": raw[:200].decode()}
                raise ApiError.from_body(error, response.status)
            return value

    # -- accounts ----------------------------------------------------------------

    async def register(self, username: str, password: str, **profile: Any) -> dict[str, Any]:
        body = {"username": username, "password": password, **profile}
        result: dict[str, Any] = await self.request("POST", "/register", body)
        return result

    async def login(self, username: str, password: str, device_name: str = "") -> dict[str, Any]:
        """Log in as a new device; the client keeps the token."""
        body = {"username": username, "password": password, "device_name": device_name}
        result: dict[str, Any] = await self.request("POST", "/login", body)
        self.token, self.user, self.device = result["token"], result["user"], result["device"]
        return result

    async def logout(self) -> None:
        await self.request("POST", "/logout")
        self.token = None

    async def me(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/me")
        return result

    async def profile(self, username: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/users/{_segment(username)}")
        return result

    async def devices(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.request("GET", "/devices")
        return result

    async def sign_out(self, device: str) -> None:
        await self.request("DELETE", f"/devices/{_segment(device)}")

    # -- contacts and groups -----------------------------------------------------

    async def add_contact(self, username: str) -> str:
        result = await self.request("POST", f"/contacts/{_segment(username)}")
        return str(result["state"])

    async def accept_contact(self, username: str) -> None:
        await self.request("POST", f"/contacts/{_segment(username)}/accept")

    async def create_group(self, name: str, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", "/groups", {"name": name, **fields})
        return result

    async def add_members(self, gid: str, users: list[str]) -> None:
        await self.request("POST", f"/groups/{_segment(gid)}/members", {"users": users})

    # -- conversations -----------------------------------------------------------

    async def conversations(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.request("GET", "/conversations")
        return result

    async def history(
        self,
        conversation: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
        direction: str = "backward",
    ) -> tuple[list[dict[str, Any]], bool]:
        """A page of history: the messages and whether more remain."""
        result = await self.request(
            "GET",
            f"/conversations/{_segment(conversation)}/messages",
            before=before,
            after=after,
            limit=limit,
            direction=direction,
        )
        return result["messages"], result["has_more"]

    async def mark_read(self, conversation: str, seq: int) -> int:
        result = await self.request(
            "PUT", f"/conversations/{_segment(conversation)}/read", {"seq": seq}
        )
        return int(result["read_seq"])

    def dm(self, other: str) -> str:
        """The id of the direct conversation with ``other``."""
        assert self.user is not None, "log in first"
        first, second = sorted((self.user, other.lower()))
        return f"dm:{first}:{second}"

    def live(self, **options: Any) -> Live:
        """A live session over the WebSocket (see :class:`~tidings.client.Live`);
        use it as ``async with client.live() as live:``."""
        from .live import Live

        return Live(self, **options)

    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + "/ws"
