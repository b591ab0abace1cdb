"""The Tidings server: HTTP + WebSocket API over the IM layer, the push hub,
limits. Build one with :func:`create_app`; run one with :func:`serve`."""

from .app import create_app
from .runner import serve

__all__ = ["create_app", "serve"]
