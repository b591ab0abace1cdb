"""Settings: one frozen dataclass built once from CLI flags and ``TIDINGS_*``
environment variables. Nothing else in Tidings reads ``os.environ``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8081
    # The data folder holds the embedded database (and later, uploads).
    data_dir: str = "tidings-data"
    # Empty means the embedded SQLite file inside data_dir.
    db: str = ""
    log_level: str = "info"

    @property
    def db_url(self) -> str:
        if self.db:
            return self.db
        return "sqlite:///" + str(Path(self.data_dir).absolute() / "tidings.db")


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
        if raw is None:
            continue
        kind = type(field.default)
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
