"""What a test does when something it needs is missing."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def cannot_run(reason: str) -> None:
    """Skip with ``reason`` on a developer machine; fail under ``CI=true``,
    where every test must run (a skipped test that CI never runs is a defect)."""
    if in_ci():
        pytest.fail(f"required under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)
