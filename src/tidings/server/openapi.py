"""The OpenAPI 3.1 document, generated from the route table (so it cannot drift)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .. import __version__
from .routes import Route
from .schemas import COMPONENTS, ref

DESCRIPTION = (
    "HTTP + JSON API of Tidings. Real-time traffic (send with ack, pushed inbox "
    "events, sync by cursor, typing, presence) goes over the WebSocket at /ws; its "
    "frames, error codes and delivery contract are in docs/protocol.md."
)
_PATH_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")


def operation_id(route: Route) -> str:
    words = re.sub(r"[{}]", "", route.path).strip("/").replace("/", "_").replace(".", "_")
    return f"{route.method.lower()}_{words or 'root'}"


def openapi_path(path: str) -> str:
    """An aiohttp path (``{name:regex}`` allowed) in OpenAPI's ``{name}`` form."""
    return _PATH_PARAM.sub(r"{\1}", path)


def _parameters(route: Route) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(route.path)
    ]
    params += [
        {
            "name": p.name,
            "in": "query",
            "required": False,
            "description": p.description,
            "schema": {"type": p.kind},
        }
        for p in route.query
    ]
    return params


def _operation(route: Route) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "success"}
    if route.reply is not None:
        success["content"] = {route.content_type: {"schema": route.reply}}
    elif route.raw is not None:
        success["content"] = {route.content_type: {}}
    op: dict[str, Any] = {
        "operationId": operation_id(route),
        "summary": route.summary,
        "tags": [route.tag],
        "responses": {
            str(route.status): success,
            "default": {
                "description": "an error (see docs/protocol.md for the codes)",
                "content": {"application/json": {"schema": ref("Error")}},
            },
        },
        **route.extra,
    }
    parameters = _parameters(route)
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body}},
        }
    if route.auth:
        op["security"] = [{"bearer": []}]
    return op


def document(routes: Sequence[Route]) -> dict[str, Any]:
    """The OpenAPI document describing ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tidings", "version": __version__, "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
