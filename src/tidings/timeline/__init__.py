"""The timeline library: append-only, ordered logs with per-timeline sequence numbers.

Knows nothing about chat. Open a store with :func:`open_store`.
"""

from .backend import Backend
from .model import Append, Batch, Direction, Entry, Message, Page
from .reindexing import ReindexCounts
from .search import Hit, Scope, SearchConfig, SearchPage
from .store import DEFAULT_MAX_MESSAGE_BYTES, MAX_SCAN_LIMIT, Store, open_store

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "MAX_SCAN_LIMIT",
    "Append",
    "Backend",
    "Batch",
    "Direction",
    "Entry",
    "Hit",
    "Message",
    "Page",
    "ReindexCounts",
    "Scope",
    "SearchConfig",
    "SearchPage",
    "Store",
    "open_store",
]
