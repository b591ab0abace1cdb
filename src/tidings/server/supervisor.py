"""``tidings serve --workers N``: N server processes on one port, kept running.

The supervisor applies the migrations once, reserves the port, and starts N
workers (``multiprocessing``, spawned: a fresh interpreter each), which all
listen on it with SO_REUSEPORT, so the kernel spreads new connections over
them. Without ``--bus`` it runs a relay (:mod:`.bus_relay`) on a Unix socket in
a private temporary folder and the workers talk through it; with ``--bus`` they
use that bus. A worker that dies is started again; SIGTERM or SIGINT stops them
all (each closes its sockets with 1001 and finishes its writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path

from ..config import Settings
from .bus_relay import Relay
from .runner import open_server_store, redact, redact_bus

log = logging.getLogger(__name__)

# A worker gets this long to start listening; migrations already ran.
START_TIMEOUT = 60.0
# And this long to stop after SIGTERM (its own shutdown grace is 5 s).
STOP_TIMEOUT = 15.0
# How often the supervisor looks for dead workers.
CHECK_INTERVAL = 0.2
# A worker checks this often whether its supervisor is still there.
ORPHAN_CHECK = 1.0
# A worker that dies within this many seconds of starting is restarted only
# after this long, so a worker that cannot start does not spin.
CRASH_BACKOFF = 1.0


def worker_main(settings: Settings, ready: ProcessEvent) -> None:
    """The body of one worker process."""
    from .logs import configure as configure_logs

    configure_logs(settings.log_level)
    try:
        import uvloop
    except ImportError:  # not on Windows: the standard loop serves too
        asyncio.run(_work(settings, ready))
    else:
        uvloop.run(_work(settings, ready))


async def _work(settings: Settings, ready: ProcessEvent) -> None:
    from .runner import serve

    stop = asyncio.Event()
    orphaned = asyncio.create_task(_stop_when_orphaned(stop))
    try:
        await serve(settings, stop, on_ready=lambda _: ready.set())
    finally:
        orphaned.cancel()


async def _stop_when_orphaned(stop: asyncio.Event) -> None:
    """Stop when the supervisor is gone (killed with -9, it cannot stop us)."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(ORPHAN_CHECK)
    log.warning("the supervisor is gone; stopping")
    stop.set()


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound (not listening) socket holding ``port`` (0: a free one) with
    SO_REUSEPORT, so the workers can bind it too and nobody else takes it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class Supervisor:
    """Starts the workers, restarts the ones that die, stops them all."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.restarts = 0
        self._spawn = multiprocessing.get_context("spawn")
        self._workers: list[tuple[SpawnProcess, float]] = []

    def start_worker(self) -> tuple[SpawnProcess, ProcessEvent]:
        ready = self._spawn.Event()
        process = self._spawn.Process(
            target=worker_main, args=(self.settings, ready), name="tidings-worker", daemon=False
        )
        process.start()
        return process, ready

    async def start(self) -> None:
        started = [self.start_worker() for _ in range(self.count)]
        self._workers = [(process, time.monotonic()) for process, _ in started]
        deadline = time.monotonic() + START_TIMEOUT
        for process, ready in started:
            while not ready.is_set():
                if not process.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("a worker failed to start (see its log above)")
                await asyncio.sleep(0.05)

    async def watch(self, stop: asyncio.Event) -> None:
        """Restart dead workers until ``stop`` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHECK_INTERVAL)
            if stop.is_set():
                return
            for index, (process, since) in enumerate(self._workers):
                if process.is_alive():
                    continue
                code = process.exitcode
                log.warning("worker pid=%s exited with %s; restarting", process.pid, code)
                if time.monotonic() - since < CRASH_BACKOFF:
                    await asyncio.sleep(CRASH_BACKOFF)
                replacement, _ = self.start_worker()
                self._workers[index] = (replacement, time.monotonic())
                self.restarts += 1

    def stop(self) -> None:
        """SIGTERM every worker, wait, then kill the ones still running."""
        for process, _ in self._workers:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process, _ in self._workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker pid=%s did not stop; killed", process.pid)
                process.kill()
                process.join()


async def supervise(settings: Settings) -> None:
    """Run ``settings.workers`` workers until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    store = await open_server_store(settings)  # migrations, once, before any worker
    await store.close()
    holder = reserve_port(settings.host, settings.port)
    folder = tempfile.mkdtemp(prefix="tidings-")
    relay: Relay | None = None
    bus = settings.bus
    try:
        if not bus:
            relay = Relay(str(Path(folder) / "relay.sock"))
            await relay.start()
            bus = "relay:" + relay.path
        port = holder.getsockname()[1]
        worker = dataclasses.replace(settings, port=port, bus=bus, workers=1, reuse_port=True)
        supervisor = Supervisor(worker, settings.workers)
        try:
            await supervisor.start()
            host = settings.host if ":" not in settings.host else f"[{settings.host}]"
            shown = "relay between workers" if relay else redact_bus(settings.bus)
            print(
                f"tidings: serving on http://{host}:{port}/ ({settings.workers} workers, "
                f"database {redact(settings.db_url)}, bus {shown})",
                flush=True,
            )
            await supervisor.watch(stop)
        finally:
            await asyncio.to_thread(supervisor.stop)
    finally:
        if relay is not None:
            await relay.close()
        holder.close()
        shutil.rmtree(folder, ignore_errors=True)
    print("tidings: stopped", flush=True)
