"""The WebSocket protocol core: frames in, operations out; frames built; session state.

Plain code with no I/O and no ``await``: the transport hands :meth:`Session.receive`
the bytes of each frame and gets a typed operation or a :class:`Reject` back, and
writes whatever bytes the builders below return. Every frame is described in
docs/protocol.md.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import (
    BadEncoding,
    BadJSON,
    InvalidInput,
    NotAuthenticated,
    TidingsError,
    TooLarge,
    UnknownOp,
)
from ..im import GroupAdvanced, inbox_event
from ..timeline import Entry

# WebSocket close codes (1xxx are RFC 6455's, 4xxx Tidings').
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013
CLOSE_UNAUTHORIZED = 4001
CLOSE_REVOKED = 4003
CLOSE_HEARTBEAT = 4008
CLOSE_SLOW_CONSUMER = 4009
CLOSE_TOO_MANY = 4029

# A ref only correlates replies; 64 characters fit any UUID or counter.
MAX_REF_CHARS = 64
# A typing indicator per user and conversation at most this often (seconds):
# the UI shows "typing…" for a few seconds, so more would be noise.
TYPING_INTERVAL = 2.0
# Three missed heartbeats make a socket dead: one lost ping is not enough.
HEARTBEATS_BEFORE_REAP = 3
# Encoded messages kept for a fan-out in progress; a fan-out publishes all its
# inbox entries back to back, so a small cache serves every recipient.
ENCODED_CACHE = 256

Ref = str | int | None


@dataclass(frozen=True, slots=True)
class Auth:
    token: str
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Send:
    conversation: str
    text: str | None = None
    data: dict[str, Any] | None = None
    client_msg_id: str | None = None
    mentions: list[str] | None = None
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Sync:
    after: int | None = None
    limit: int = 200
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Confirm:
    cursor: int
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Read:
    conversation: str
    seq: int
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Typing:
    conversation: str
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Presence:
    users: list[str] | None = None
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Ping:
    ref: Ref = None


Op = Auth | Send | Sync | Confirm | Read | Typing | Presence | Ping


@dataclass(frozen=True, slots=True)
class Reject:
    """A frame the server refuses: answer with :func:`error_frame`, keep going."""

    error: TidingsError
    ref: Ref = None


# op name -> (operation class, {field: (kind, required)}); kinds are checked by
# _check below. ``ref`` is handled for every op.
_SPECS: dict[str, tuple[type[Any], dict[str, tuple[str, bool]]]] = {
    "auth": (Auth, {"token": ("str", True)}),
    "send": (
        Send,
        {
            "conversation": ("str", True),
            "text": ("str", False),
            "data": ("object", False),
            "client_msg_id": ("str", False),
            "mentions": ("str_list", False),
        },
    ),
    "sync": (Sync, {"after": ("int", False), "limit": ("int", False)}),
    "confirm": (Confirm, {"cursor": ("int", True)}),
    "read": (Read, {"conversation": ("str", True), "seq": ("int", True)}),
    "typing": (Typing, {"conversation": ("str", True)}),
    "presence": (Presence, {"users": ("str_list", False)}),
    "ping": (Ping, {}),
}
CLIENT_OPS = tuple(_SPECS)


def _check(kind: str, value: object) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


_KIND_NAMES = {"str": "a string", "int": "an integer", "object": "an object"}


def decode(data: bytes | str, max_bytes: int) -> dict[str, Any]:
    """Decode one frame into a JSON object.

    Raises:
        TooLarge, BadEncoding, BadJSON.
    """
    if len(data) > max_bytes:
        raise TooLarge(f"a frame is at most {max_bytes} bytes", limit=max_bytes)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        if isinstance(data, bytes):
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise BadEncoding("the frame is not valid UTF-8") from None
        raise BadJSON("the frame is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadJSON("a frame is a JSON object with an 'op' field")
    return value


def _ref(frame: dict[str, Any]) -> Ref:
    ref = frame.get("ref")
    if isinstance(ref, bool) or not isinstance(ref, str | int | None):
        return None
    if isinstance(ref, str) and len(ref) > MAX_REF_CHARS:
        return None
    return ref


def parse(frame: dict[str, Any]) -> Op:
    """Turn a decoded frame into an operation.

    Raises:
        UnknownOp: no such op. InvalidInput: a missing field or a wrong type.
    """
    name = frame.get("op")
    if not isinstance(name, str) or name not in _SPECS:
        raise UnknownOp(f"unknown op {name!r}", known=list(CLIENT_OPS))
    if frame.get("ref") is not None and _ref(frame) is None:
        raise InvalidInput(
            f"ref is a string of at most {MAX_REF_CHARS} characters or an integer", field="ref"
        )
    cls, fields = _SPECS[name]
    values: dict[str, Any] = {"ref": _ref(frame)}
    for key, (kind, required) in fields.items():
        value = frame.get(key)
        if value is None:
            if required:
                raise InvalidInput(f"{name}: {key} is required", field=key)
            continue
        if not _check(kind, value):
            expected = _KIND_NAMES.get(kind, "a list of strings")
            raise InvalidInput(f"{name}: {key} must be {expected}", field=key)
        values[key] = value
    op: Op = cls(**values)
    return op


@dataclass(slots=True)
class Session:
    """One socket's protocol state.

    Args:
        opened_at: the clock reading when the socket opened.
        max_frame_bytes: the largest frame accepted.
        heartbeat: seconds of silence before a ping.
    """

    opened_at: float
    max_frame_bytes: int
    heartbeat: float
    user: str | None = None
    device: str | None = None
    # The highest inbox seq this socket was given (pushed or synced): pushes at
    # or below it are not sent again.
    delivered: int = 0
    # When the session's token expires (store clock, Unix seconds).
    expires_at: float = float("inf")
    last_inbound: float = field(init=False)
    last_ping: float = field(init=False)
    _typing: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.last_inbound = self.last_ping = self.opened_at

    @property
    def authenticated(self) -> bool:
        return self.user is not None

    def receive(self, data: bytes | str, now: float) -> Op | Reject:
        """Parse one inbound frame; before authentication only ``auth`` passes."""
        self.touch(now)
        try:
            frame = decode(data, self.max_frame_bytes)
        except TidingsError as exc:
            return Reject(exc)
        try:
            op = parse(frame)
        except TidingsError as exc:
            return Reject(exc, _ref(frame))
        if isinstance(op, Auth) == self.authenticated:
            if self.authenticated:
                return Reject(InvalidInput("this socket is already authenticated"), op.ref)
            return Reject(NotAuthenticated("send an auth frame first"), op.ref)
        return op

    def authenticate(
        self, user: str, device: str, cursor: int, expires_at: float = float("inf")
    ) -> None:
        """Mark the socket as ``user``'s ``device`` whose stored cursor is
        ``cursor``, its token valid until ``expires_at``."""
        self.user, self.device, self.delivered = user, device, cursor
        self.expires_at = expires_at

    def touch(self, now: float) -> None:
        """Note a sign of life (any frame, a pong)."""
        self.last_inbound = now

    def should_push(self, inbox_seq: int) -> bool:
        """Whether to push the inbox entry at ``inbox_seq`` (not yet given)."""
        if inbox_seq <= self.delivered:
            return False
        self.delivered = inbox_seq
        return True

    def synced(self, cursor: int) -> None:
        """A sync reply up to ``cursor`` is on its way: pushes up to it are redundant."""
        self.delivered = max(self.delivered, cursor)

    def heartbeat_due(self, now: float) -> str | None:
        """``"ping"`` when a ping is due, ``"reap"`` when the socket is dead, else None."""
        silent = now - self.last_inbound
        if silent >= HEARTBEATS_BEFORE_REAP * self.heartbeat:
            return "reap"
        if silent >= self.heartbeat and now - self.last_ping >= self.heartbeat:
            self.last_ping = now
            return "ping"
        return None

    def may_type(self, conversation: str, now: float) -> bool:
        """Whether a typing indicator for ``conversation`` may go out now."""
        last = self._typing.get(conversation)
        if last is not None and now - last < TYPING_INTERVAL:
            return False
        if len(self._typing) > 64:  # a client typing in many places: forget old ones
            self._typing.clear()
        self._typing[conversation] = now
        return True


# -- outbound frames ---------------------------------------------------------------


def frame(op: str, ref: Ref = None, **fields: Any) -> bytes:
    """Encode a server frame; ``ref`` is included when the client sent one."""
    body: dict[str, Any] = {"op": op}
    if ref is not None:
        body["ref"] = ref
    body.update(fields)
    return orjson.dumps(body)


def error_frame(error: TidingsError, ref: Ref = None) -> bytes:
    return frame("error", ref, **error.to_dict())


def text_frames(payloads: Iterable[bytes]) -> bytes:
    """WebSocket text frames as a server sends them (RFC 6455: final, unmasked,
    uncompressed), joined so that a burst goes out in one write."""
    parts: list[bytes] = []
    for payload in payloads:
        size = len(payload)
        if size < 126:
            parts.append(bytes((0x81, size)))
        elif size < 65536:
            parts.append(struct.pack("!BBH", 0x81, 126, size))
        else:
            parts.append(struct.pack("!BBQ", 0x81, 127, size))
        parts.append(payload)
    return b"".join(parts)


class EventEncoder:
    """Encodes pushes, each message once however many inboxes it reached.

    A fanned-out message differs between recipients only in its inbox seq, so
    the message is encoded once and spliced into each recipient's frame.
    """

    def __init__(self) -> None:
        self._messages: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    def event(self, entry: Entry) -> bytes:
        """The ``event`` frame of one inbox entry."""
        if entry.ref is None:
            return frame("event", event=inbox_event(entry))
        encoded = self._messages.get(entry.ref)
        if encoded is None:
            conversation, seq = entry.ref
            encoded = orjson.dumps({"conversation": conversation, "seq": seq, **entry.message})
            self._messages[entry.ref] = encoded
            if len(self._messages) > ENCODED_CACHE:
                self._messages.popitem(last=False)
        return b'{"op":"event","event":{"inbox_seq":%d,"type":"message","message":%b}}' % (
            entry.seq,
            encoded,
        )

    @staticmethod
    def group_head(advanced: GroupAdvanced) -> bytes:
        return frame("group_head", conversation=advanced.conversation, seq=advanced.seq)
