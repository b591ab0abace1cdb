"""A Python client for Tidings: the HTTP API and a live WebSocket session.

async with Client("http://127.0.0.1:8081") as client:
    await client.login("bot", "secret-password")
    async with client.live() as live:
        async for event in live.events():
            ...
"""

from .http import ApiError, Client
from .live import ConnectionLost, Live

__all__ = ["ApiError", "Client", "ConnectionLost", "Live"]
