"""Test doubles of the IM search tests."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

Users = Callable[..., Coroutine[Any, Any, list[str]]]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
