"""``tidings bench load`` end to end: each scenario, tiny, against a spawned
server; delivery must verify. No timing thresholds: figures go in
docs/benchmarks.md, not in tests."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

KEYS = {
    "sent_per_s",
    "delivered_per_s",
    "p50_ms",
    "p99_ms",
    "lost",
    "duplicated",
    "out_of_order",
    "server_rss_mb",
    "connections",
}
TINY = {
    "dm": ["--users", "6", "--duration", "1"],
    "group": ["--members", "8", "--senders", "3", "--duration", "1"],
    "offline": ["--senders", "3", "--messages", "150"],
    "idle": ["--connections", "20", "--duration", "0.5"],
    "mixed": ["--users", "12", "--duration", "2", "--rate", "4"],
}


@pytest.mark.parametrize("scenario", sorted(TINY))
def test_each_scenario_delivers_everything_exactly_once_in_order(scenario: str) -> None:
    command = [sys.executable, "-m", "tidings.cli", "bench", "load", "--spawn", "--json"]
    command += ["--scenario", scenario, *TINY[scenario]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    result = orjson.loads(done.stdout)
    assert KEYS <= set(result)
    assert (result["lost"], result["duplicated"], result["out_of_order"]) == (0, 0, 0)
    assert result["errors"] == 0
    expected = 20 if scenario == "idle" else 3 if scenario == "offline" else None
    if expected is not None:
        assert result["connections"] == expected
    if scenario == "offline":
        assert result["delivered"] == 150 and result["sync_ms"] is not None
    elif scenario != "idle":
        assert result["sent"] > 0 and result["delivered"] > 0


def _message(n: int, seq: int, sender: str = "ann") -> dict[str, object]:
    return {"conversation": "dm:ann:bob", "seq": seq, "from": sender, "data": {"n": n, "t": 0.0}}


def test_the_verifier_counts_duplicates_reorderings_and_losses() -> None:
    from tidings.bench.load_verify import Verifier, lost

    verifier = Verifier()
    for n, seq in [(0, 1), (2, 3), (1, 2), (2, 3), (4, 5)]:
        verifier.deliver("bob", _message(n, seq), 1.0)
    verifier.deliver("bob", {"conversation": "dm:ann:bob", "seq": 9, "kind": "system"}, 1.0)
    assert (verifier.duplicated, verifier.out_of_order, verifier.delivered) == (1, 1, 4)
    members = {"dm:ann:bob": ("ann", "bob")}
    # ann's 5 acked messages: bob lacks n=3, ann (her own echo) lacks all 5.
    assert lost({("ann", "dm:ann:bob"): 5}, verifier.received(), members) == 1 + 5
