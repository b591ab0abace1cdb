"""The HTTP route table and the adapter that runs a route.

Every HTTP route is a :class:`Route`: method, path, handler, and the JSON
schemas of its body and reply. The adapter authenticates, reads and validates
the body against its schema, parses the query, calls the handler and encodes
the reply; the OpenAPI document is generated from the same table, so what is
documented is what runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from ..errors import BadEncoding, BadJSON, InvalidInput, TooLarge, Unauthorized
from ..im import Session, accounts
from .schemas import validate
from .state import STATE_KEY, ServerState


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter: ``kind`` is "integer" or "string"."""

    name: str
    kind: str
    description: str


@dataclass(slots=True)
class Call:
    """One HTTP request as a route handler sees it."""

    state: ServerState
    request: web.Request
    session: Session | None
    body: dict[str, Any]
    query: dict[str, Any]

    @property
    def user(self) -> str:
        assert self.session is not None, "only for routes with auth=True"
        return self.session.user

    def path(self, name: str) -> str:
        return self.request.match_info[name]


Handler = Callable[[Call], Awaitable[Any]]
RawHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One route. ``handler`` returns the reply's JSON value (None: 204).

    ``raw`` routes (the socket, metrics, static files) get the aiohttp request
    and answer themselves; they are listed for the OpenAPI document.
    """

    method: str
    path: str
    summary: str
    handler: Handler | None = None
    tag: str = "api"
    body: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None
    status: int = 200
    auth: bool = True
    query: tuple[Param, ...] = ()
    raw: RawHandler | None = None
    content_type: str = "application/json"
    extra: dict[str, Any] = field(default_factory=dict)


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def read_json(request: web.Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object ({} when empty).

    Raises:
        TooLarge, BadEncoding, BadJSON.
    """
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"a request body is at most {limit} bytes", limit=limit)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"a request body is at most {limit} bytes", limit=limit) from None
    if not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadEncoding("the body is not valid UTF-8") from None
        raise BadJSON("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadJSON("the body must be a JSON object")
    return value


def _query(route: Route, request: web.Request) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param in route.query:
        raw = request.query.get(param.name)
        if raw is None or raw == "":
            continue
        if param.kind == "integer":
            try:
                values[param.name] = int(raw)
            except ValueError:
                raise InvalidInput(f"{param.name} must be an integer", field=param.name) from None
        else:
            values[param.name] = raw
    return values


def endpoint(route: Route) -> RawHandler:
    """The aiohttp handler that runs ``route``."""
    if route.raw is not None:
        return route.raw
    assert route.handler is not None, f"{route.method} {route.path} has no handler"
    handler = route.handler

    async def run(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        session = None
        if route.auth:
            token = bearer_token(request)
            if token is None:
                raise Unauthorized("send 'Authorization: Bearer <token>' (from /api/login)")
            session = await accounts.authenticate(state.ctx, token)
        body: dict[str, Any] = {}
        if route.body is not None:
            body = await read_json(request, state.settings.max_body_bytes)
            validate(route.body, body)
        call = Call(state, request, session, body, _query(route, request))
        result = await handler(call)
        if result is None:
            return web.Response(status=204)
        return json_response(result, route.status)

    return run
