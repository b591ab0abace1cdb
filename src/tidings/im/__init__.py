"""The IM domain: accounts, contacts, groups, messaging, sync and read state,
written over timelines. No HTTP here.

Every action is a coroutine taking a :class:`Context` first::

    ctx = Context(store, IMSettings(), publish=hub.publish)
    await accounts.register(ctx, "alice", "correct horse")
    ack = await messaging.send(ctx, "alice", names.dm("alice", "bob"), text="hi")
"""

from . import accounts, contacts, groups, messaging, names, search, sync
from .access import Window, read_window
from .accounts import Session
from .context import Context
from .events import (
    Delivery,
    GroupAdvanced,
    InboxAdvanced,
    Publish,
    SessionRevoked,
    history_message,
    inbox_event,
    message_view,
)
from .messaging import Ack
from .settings import IMSettings
from .sync import SyncResult

__all__ = [
    "Ack",
    "Context",
    "Delivery",
    "GroupAdvanced",
    "IMSettings",
    "InboxAdvanced",
    "Publish",
    "Session",
    "SessionRevoked",
    "SyncResult",
    "Window",
    "accounts",
    "contacts",
    "groups",
    "history_message",
    "inbox_event",
    "message_view",
    "messaging",
    "names",
    "read_window",
    "search",
    "sync",
]
