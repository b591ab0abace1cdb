"""Settings: one frozen dataclass built once from CLI flags and ``TIDINGS_*``
environment variables. Nothing else in Tidings reads ``os.environ``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidInput

if TYPE_CHECKING:
    from .im.settings import IMSettings


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8081
    # The data folder holds the embedded database (and later, uploads).
    data_dir: str = "tidings-data"
    # Empty means the embedded SQLite file inside data_dir.
    db: str = ""
    log_level: str = "info"
    # The built web client (index.html and assets/); empty looks for web/dist
    # in the working folder, then beside the source tree.
    web_dir: str = ""
    # SQLite's synchronous pragma: FULL syncs every commit (survives power loss);
    # NORMAL survives a crash of the process only. Tests use NORMAL for speed.
    sqlite_synchronous: str = "FULL"

    # -- many nodes (see docs/deploy.md) -----------------------------------------
    # The bus between nodes: empty for a lone node, nats://host:4222[,nats://…]
    # for a NATS server or cluster.
    bus: str = ""
    # Worker processes on one port (SO_REUSEPORT). Without --bus they talk over a
    # relay the supervisor runs; one per core uses the whole machine.
    workers: int = 1
    # Listen with SO_REUSEPORT, so several processes share the port (set for
    # the workers of --workers; useful for nodes started by hand too).
    reuse_port: bool = False

    # -- limits (see docs/protocol.md, "Limits") -------------------------------
    # A frame holds one operation; 64 KiB matches the largest stored message.
    max_frame_bytes: int = 64 * 1024
    # HTTP bodies carry the same operations plus profile and group fields.
    max_body_bytes: int = 256 * 1024
    # A person types far slower than 20 messages a second; bots get bursts.
    messages_per_second: float = 20.0
    message_burst: int = 40
    # Phones, laptops and a few browser tabs; more is a leak or an abuse.
    max_connections_per_user: int = 16
    # Frames waiting for a slow socket; past this it is cut off (code 4009).
    # 1,024 holds a busy minute of a large group without holding much memory.
    outbound_queue: int = 1024
    # Seconds of silence before a ping; three of them and the socket is reaped.
    # 30 s keeps NAT and proxy mappings alive at little cost.
    heartbeat: float = 30.0
    # Failed logins per username and client address before refusing, and the
    # seconds after which one more attempt is allowed: slows guessing to a crawl.
    login_attempts: int = 10
    login_refill: float = 30.0
    # Argon2id cost of password hashes (tests lower them, never production).
    password_time_cost: int = 3
    password_memory_kib: int = 65_536
    # Groups up to this size get an inbox entry per member per message (write
    # fan-out); larger ones only history plus "group_head" hints (read
    # fan-out). See docs/benchmarks.md ("fan-out", "Load") for the trade-off.
    write_fanout_max: int = 200

    @property
    def db_url(self) -> str:
        if self.db:
            return self.db
        return "sqlite:///" + str(Path(self.data_dir).absolute() / "tidings.db")

    def im_settings(self) -> IMSettings:
        """The IM layer's settings, with the password cost chosen here."""
        from .im.settings import IMSettings  # the parser is built without the IM layer

        return IMSettings(
            password_time_cost=self.password_time_cost,
            password_memory_kib=self.password_memory_kib,
            write_fanout_max=self.write_fanout_max,
        )


# Shorter names operators know from the docs, read when the full one is unset.
ALIASES = {"data_dir": "TIDINGS_DATA"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a ``--flag`` per setting; each defaults to its ``TIDINGS_*`` variable."""
    for field in fields(Settings):
        flag = "--" + field.name.replace("_", "-")
        env = "TIDINGS_" + field.name.upper()
        parser.add_argument(
            flag, dest=field.name, default=None, help=f"(env {env}; default {field.default!r})"
        )


def load_settings(
    args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings: a flag beats its environment variable beats the default.

    Raises:
        InvalidInput: a value of the wrong type, naming the flag and variable.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in fields(Settings):
        raw = getattr(args, field.name, None) if args is not None else None
        if raw is None:
            raw = environ.get("TIDINGS_" + field.name.upper())
        if raw is None and field.name in ALIASES:
            raw = environ.get(ALIASES[field.name])
        if raw is None:
            continue
        kind: Any = type(field.default)
        try:
            values[field.name] = kind(raw) if kind is not bool else _boolean(raw)
        except ValueError:
            raise InvalidInput(
                f"--{field.name.replace('_', '-')} / TIDINGS_{field.name.upper()}: "
                f"expected {kind.__name__}, got {raw!r}"
            ) from None
    return Settings(**values)


def _boolean(raw: str) -> bool:
    lowered = str(raw).lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)
