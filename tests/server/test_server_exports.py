"""The public API of the server and client packages, pinned."""

import tidings.client
import tidings.server


def test_server_exports() -> None:
    assert tidings.server.__all__ == ["create_app", "serve"]


def test_client_exports() -> None:
    assert tidings.client.__all__ == ["ApiError", "Client", "ConnectionLost", "Live"]
    for name in tidings.client.__all__:
        assert getattr(tidings.client, name).__doc__
