"""The processes of a test cluster, each on loopback ports of its own.

A PostgreSQL made with initdb in a temporary folder, a 3-server NATS cluster
and Tidings nodes (``tidings serve`` subprocesses). Everything is started with
blocking calls (fixtures run outside the event loop; tests wrap restarts in
``asyncio.to_thread``) and torn down however the test ended.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson

from required import cannot_run

TIDINGS = [sys.executable, "-m", "tidings.cli", "serve"]
# Low Argon2 costs and a high message rate: the tests measure delivery, not limits.
NODE_ENV = {
    "TIDINGS_PASSWORD_TIME_COST": "1",
    "TIDINGS_PASSWORD_MEMORY_KIB": "1024",
    "TIDINGS_SQLITE_SYNCHRONOUS": "NORMAL",
    "TIDINGS_MESSAGES_PER_SECOND": "1000",
    "TIDINGS_MESSAGE_BURST": "1000",
    "TIDINGS_LOG_LEVEL": "warning",
}
START_TIMEOUT = 30.0


# Ports handed out by free_port in this process.
_GIVEN: set[int] = set()


def free_port() -> int:
    """A loopback port that nothing listens on now, never the same one twice
    in this process (the kernel may hand a just-closed port out again, and a
    cluster takes ten of them before any server binds)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def wait_for_port(port: int, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout:g} s")


def stop_process(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Postgres:
    """A PostgreSQL server of the test's own (trust auth, loopback)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [
            shutil.which("initdb") or ""
        ]
        if not found[-1]:
            cannot_run("initdb (PostgreSQL server binaries) not found")
        self.bin = Path(found[-1]).parent
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tidings-pg-"))
        self.data = self.root / "data"
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # initdb refuses to run as root: then the cluster belongs to postgres.
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def start(self) -> None:
        # fsync off survives a crash of the server (the tests' kind), not of the
        # machine; synchronous_commit stays on: off would lose acked commits.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class NatsCluster:
    """``size`` nats-server processes joined by routes on loopback ports."""

    def __init__(self, root: Path, size: int = 3) -> None:
        self.binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not os.path.exists(self.binary):
            cannot_run("nats-server not found")
        self.root = root
        self.ports = [free_port() for _ in range(size)]
        self.routes = [free_port() for _ in range(size)]
        self.monitors = [free_port() for _ in range(size)]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{port}" for port in self.ports)

    def start(self, index: int) -> None:
        routes = ",".join(f"nats://127.0.0.1:{r}" for i, r in enumerate(self.routes) if i != index)
        log = open(self.root / f"nats{index}.log", "ab")  # noqa: SIM115 (the process owns it)
        self.processes[index] = subprocess.Popen(
            [
                self.binary,
                "-a",
                "127.0.0.1",
                "-p",
                str(self.ports[index]),
                "-m",
                str(self.monitors[index]),
                "-n",
                f"n{index}",
                "--cluster_name",
                "tidings-test",
                "--cluster",
                f"nats://127.0.0.1:{self.routes[index]}",
                "--routes",
                routes,
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        wait_for_port(self.ports[index])

    def start_all(self) -> None:
        for index in range(len(self.ports)):
            self.start(index)
        self.wait_routes(len(self.ports) - 1)

    def wait_routes(self, routes: int, timeout: float = START_TIMEOUT) -> None:
        """Wait until each running server has ``routes`` routes."""
        deadline = time.monotonic() + timeout
        for index, process in enumerate(self.processes):
            if process is None or process.poll() is not None:
                continue
            while True:
                url = f"http://127.0.0.1:{self.monitors[index]}/routez"
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(url, timeout=1) as response:
                        if orjson.loads(response.read())["num_routes"] >= routes:
                            break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"NATS server {index} has fewer than {routes} routes")
                time.sleep(0.05)

    def kill(self, index: int) -> None:
        stop_process(self.processes[index], signal.SIGKILL)

    def stop_all(self) -> None:
        for process in self.processes:
            stop_process(process, signal.SIGKILL)


class Node:
    """One ``tidings serve`` process on a fixed loopback port."""

    def __init__(self, name: str, root: Path, args: list[str]) -> None:
        self.name = name
        self.root = root
        self.port = free_port()
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / f"{name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        out = open(self.log, "ab")  # noqa: SIM115 (the process owns it)
        env = {**os.environ, **NODE_ENV}
        self.process = subprocess.Popen(
            [*TIDINGS, "--port", str(self.port), *self.args], stdout=out, stderr=out, env=env
        )
        out.close()
        deadline = time.monotonic() + START_TIMEOUT
        while b"tidings: serving on" not in self.log.read_bytes()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        stop_process(self.process, signal.SIGKILL)

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class Cluster:
    pg: Postgres
    nats: NatsCluster
    nodes: list[Node]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]
