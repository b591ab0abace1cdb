"""The server under load: a spawned ``tidings serve`` process, and what any
process costs (CPU and memory) read from ``/proc``.

psutil is not a dependency: ``/proc/<pid>/stat`` has the CPU ticks and
``/proc/<pid>/status`` the resident set (``VmRSS``) and its peak (``VmHWM``).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# The spawned server is the bench's own: rate limits high enough that no send
# is refused, and the cheapest password hash Argon2 allows, so that setting up
# thousands of users measures the server, not Argon2.
SPAWN_FLAGS = (
    "--messages-per-second",
    "1000000",
    "--message-burst",
    "1000000",
    "--max-connections-per-user",
    "64",
    "--login-attempts",
    "1000000",
    "--password-time-cost",
    "1",
    "--password-memory-kib",
    "64",
)
# A fresh server prints its address within this many seconds.
START_TIMEOUT = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def raise_open_files() -> int:
    """Raise the soft limit on open files to the hard limit (inherited by the
    processes started afterwards). Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds (user + system) and memory (bytes) of a process tree."""

    cpu: float
    rss: int
    peak_rss: int


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in task.read_text().split()]
        except OSError:
            continue
    return found


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += _children(current)
    return pids


def _one(pid: int) -> Usage | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    # The command name may hold spaces; the fields after it are positional.
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    memory = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            memory[key] = int(value.split()[0]) * 1024
    return Usage(cpu, memory.get("VmRSS", 0), memory.get("VmHWM", 0))


def usage(pid: int) -> Usage:
    """The CPU and memory of ``pid`` and its descendants (server workers)."""
    parts = [u for u in map(_one, _tree(pid)) if u is not None]
    return Usage(
        sum(u.cpu for u in parts), sum(u.rss for u in parts), sum(u.peak_rss for u in parts)
    )


class SpawnedServer:
    """``tidings serve`` on a fresh data folder and a free port, stopped by
    :meth:`stop` (SIGTERM, then SIGKILL)."""

    def __init__(
        self, *, db: str = "", workers: int | None = None, write_fanout_max: int | None = None
    ) -> None:
        self._scratch = tempfile.TemporaryDirectory(prefix="tidings-load-")
        command = [sys.executable, "-m", "tidings.cli", "serve", "--port", "0"]
        command += ["--data-dir", self._scratch.name, *SPAWN_FLAGS]
        if db:
            command += ["--db", db]
        if workers is not None:
            command += ["--workers", str(workers)]
        if write_fanout_max is not None:
            command += ["--write-fanout-max", str(write_fanout_max)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.url = self._wait_for_address()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _wait_for_address(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            if line.startswith("tidings: serving on "):
                return line.split()[3].rstrip("/")
        self.stop()
        raise RuntimeError("the spawned server did not start (try it: tidings serve)")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._scratch.cleanup()
