"""The web client's state logic (sync cursor, gap detection, pending/ack,
unread counts, message merging): its Vitest suite, run as one test so that
``make test`` covers it."""

from __future__ import annotations

import os
import shutil
import subprocess

from web_harness import WEB

from required import cannot_run

# The suite takes a couple of seconds; this is a hang, not slowness.
VITEST_TIMEOUT = 300


def test_vitest_suite_passes() -> None:
    npx = shutil.which("npx")
    if npx is None or not (WEB / "node_modules" / ".bin" / "vitest").exists():
        cannot_run("Node.js or web/node_modules is missing (make web, or cd web && npm ci)")
    result = subprocess.run(
        [npx, "--no-install", "vitest", "run", "--reporter=dot"],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=VITEST_TIMEOUT,
        env={**os.environ, "NO_COLOR": "1", "CI": "true"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
