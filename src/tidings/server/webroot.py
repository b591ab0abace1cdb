"""``/``: the web client when it is built (web/dist), else a page saying so."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ..config import Settings
from .routes import RawHandler, Route

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tidings</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>Tidings is running</h1>
<p>The web client is built separately (the <code>web/</code> folder, with Vite, into
<code>web/dist</code>); it is not built on this server yet.</p>
<p>The API is here: <a href="/openapi.json">/openapi.json</a> (HTTP) and
<code>/ws</code> (WebSocket; see docs/protocol.md). Health: <a href="/healthz">/healthz</a>.</p>
</body></html>
"""


def find_dist(settings: Settings) -> Path | None:
    """The folder of the built web client, or None."""
    if settings.web_dir:
        candidates = [Path(settings.web_dir)]
    else:
        source_tree = Path(__file__).resolve().parents[3]
        candidates = [
            Path.cwd() / "web" / "dist",
            source_tree / "web" / "dist",
            # An installed wheel carries the client as tidings/web (setup.py).
            Path(__file__).resolve().parents[1] / "web",
        ]
    for folder in candidates:
        if (folder / "index.html").is_file():
            return folder
    return None


def index_handler(dist: Path | None) -> RawHandler:
    async def index(request: web.Request) -> web.StreamResponse:
        if dist is None:
            return web.Response(text=PLACEHOLDER, content_type="text/html")
        return web.FileResponse(dist / "index.html", headers={"Cache-Control": "no-cache"})

    return index


def add_assets(app: web.Application, dist: Path | None) -> None:
    """Serve the client's ``/assets/…`` folder (Vite's hashed bundles)."""
    if dist is not None and (dist / "assets").is_dir():
        app.router.add_static("/assets/", dist / "assets")


def file_routes(dist: Path | None) -> list[Route]:
    """A route per other top-level file of the client (favicon, manifest…)."""
    if dist is None:
        return []
    return [
        Route(
            "GET",
            "/" + item.name,
            f"Web client file {item.name}",
            tag="web",
            auth=False,
            raw=_file(item),
            content_type="application/octet-stream",
        )
        for item in sorted(dist.iterdir())
        if item.is_file() and item.name != "index.html"
    ]


def _file(path: Path) -> RawHandler:
    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path)

    return serve
