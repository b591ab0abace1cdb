"""``tidings bench transport`` runs end to end on a tiny load and reports every
figure per stack (no speed is checked: benchmarks are programs, not tests)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_transport_bench_reports_each_stack() -> None:
    command = [sys.executable, "-m", "tidings.cli", "bench", "transport", "--json"]
    options = ["--connections", "4", "--window", "2", "--duration", "0.3"]
    done = subprocess.run(
        [*command, *options, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    stacks = {row["stack"]: row for row in json.loads(done.stdout)["stacks"]}
    assert set(stacks) == {"aiohttp", "picows"}
    assert stacks["aiohttp"]["acks_per_s"] > 0
    for row in stacks.values():
        assert "skipped" in row or {"acks_per_s", "p50_ms", "p99_ms", "server_us_per_ack"} <= set(
            row
        )
