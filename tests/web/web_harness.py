"""What the browser tests drive: a real ``tidings serve`` subprocess, and the
web client's pages in headless Chromium (Debian's, never a downloaded one).

The server runs on a free port over a SQLite file in a temp dir, with low
Argon2 costs and no rate limits that a test would hit; it can be stopped and
started again on the same port and data (the restart scenario).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
DIST = WEB / "dist"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
# A server that is not up after this long (s) is broken, not slow.
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def web_sources_newer_than_dist() -> bool:
    """True when web/dist is missing or older than a source file."""
    index = DIST / "index.html"
    if not index.is_file():
        return True
    built = index.stat().st_mtime
    sources = [WEB / "index.html", WEB / "package-lock.json", WEB / "vite.config.ts"]
    sources += [p for p in (WEB / "src").rglob("*") if p.is_file()]
    return any(p.stat().st_mtime > built for p in sources if p.exists())


def build_web() -> None:
    """``npm ci`` (when node_modules is missing) and ``npm run build``."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: cannot build web/dist")
    if not (WEB / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True)
    subprocess.run([npm, "run", "build"], cwd=WEB, check=True)


class Server:
    """A ``tidings serve`` subprocess on a fixed port and data dir."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "TIDINGS_PASSWORD_TIME_COST": "1",
            "TIDINGS_PASSWORD_MEMORY_KIB": "1024",
            "TIDINGS_SQLITE_SYNCHRONOUS": "NORMAL",
            "TIDINGS_MESSAGES_PER_SECOND": "1000",
            "TIDINGS_MESSAGE_BURST": "1000",
            "TIDINGS_WEB_DIR": str(DIST),
            "TIDINGS_LOG_LEVEL": "warning",
        }
        command = [sys.executable, "-m", "tidings.cli", "serve"]
        command += ["--port", str(self.port), "--data-dir", str(self.data_dir)]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tidings serve exited: {self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError("tidings serve did not become healthy in time")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """One HTTP call to the API (for set-up steps a test does not click through)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + "/api" + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=10) as reply:
            text = reply.read()
        return json.loads(text) if text else None

    def account(self, username: str) -> str:
        """Register ``username`` and return a session token."""
        self.api("POST", "/register", {"username": username, "password": PASSWORD})
        login = self.api("POST", "/login", {"username": username, "password": PASSWORD})
        token: str = login["token"]
        return token
