"""A one-line progress display for benchmarks run on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

# Redrawing more often than this only costs the benchmark time.
REFRESH_SECONDS = 0.2


class Progress:
    """Rewrites one status line on ``stream`` when it is a terminal; silent
    otherwise (in pipes, logs and tests)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._enabled = self._stream.isatty()
        self._last = 0.0
        self._width = 0

    def show(self, text: str, *, force: bool = False) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < REFRESH_SECONDS:
            return
        self._last = now
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        if self._enabled and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0
