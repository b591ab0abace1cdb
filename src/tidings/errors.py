"""The error tree shared by every layer.

Each client-facing error carries a stable ``code`` (what programs match on), an
HTTP status and a message a person can act on. Internal failures are never sent
to the wire as they are: the server maps anything outside this tree to
``internal``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TidingsError(Exception):
    """Base of every error Tidings raises on purpose."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(TidingsError):
    """The caller sent something malformed: wrong type, out of range, too large."""

    code = "invalid_input"
    status = 400


class TooLarge(InvalidInput):
    """A message, frame or body is over its configured size limit."""

    code = "too_large"
    status = 413


class NotFound(TidingsError):
    """The thing named does not exist (or the caller may not know it does)."""

    code = "not_found"
    status = 404


class Conflict(TidingsError):
    """The request clashes with the current state (a name already taken, say)."""

    code = "conflict"
    status = 409


class Unauthorized(TidingsError):
    """No valid credentials: log in again."""

    code = "unauthorized"
    status = 401


class Forbidden(TidingsError):
    """Valid credentials, but this user may not do this."""

    code = "forbidden"
    status = 403


class RateLimited(TidingsError):
    """Too many requests; retry after ``details['retry_after']`` seconds."""

    code = "rate_limited"
    status = 429


class Internal(TidingsError):
    """A bug. Its details go to the log; the wire only ever says "internal error"."""

    code = "internal"
    status = 500

    def __init__(self, message: str = "internal error", **details: Any) -> None:
        super().__init__(message, **details)


class Unavailable(TidingsError):
    """The storage or a needed service is unreachable; the request may be retried.

    Nothing was written when this is raised from a write.
    """

    code = "unavailable"
    status = 503


# -- the wire protocol (HTTP bodies and WebSocket frames) ----------------------


class BadJSON(InvalidInput):
    """A frame or request body is not a JSON object."""

    code = "bad_json"


class BadEncoding(InvalidInput):
    """A frame or request body is not valid UTF-8."""

    code = "bad_encoding"


class UnknownOp(InvalidInput):
    """A WebSocket frame names an operation the server does not have."""

    code = "unknown_op"


class NotAuthenticated(Unauthorized):
    """A WebSocket frame other than ``auth`` arrived before authentication."""

    code = "not_authenticated"


class MethodNotAllowed(TidingsError):
    """The route exists, but not with this HTTP method."""

    code = "method_not_allowed"
    status = 405


class TooManyConnections(RateLimited):
    """The user already has the maximum number of live sockets."""

    code = "too_many_connections"
