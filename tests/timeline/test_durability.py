"""Durability (issue 2 §3 point 7): an acked append survives SIGKILL.

A child process appends with several concurrent writers and prints each acked
seq; the test kills it with SIGKILL while writes are in flight, reopens the
store and finds every acked entry, intact, at its acked seq.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from timeline_harness import StoreFactory

CHILD = Path(__file__).with_name("durability_child.py")
TIMELINE = "dm:durable"
WRITERS = 8
# Enough acks that the kill lands in a steady stream of group commits.
ACKS_BEFORE_KILL = 300


async def _run_child_until_killed(url: str, stderr: Path) -> tuple[list[tuple[int, Any]], int]:
    with stderr.open("wb") as err:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            url,
            TIMELINE,
            str(WRITERS),
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    assert child.stdout is not None
    acked: list[tuple[int, Any]] = []
    try:
        while len(acked) < ACKS_BEFORE_KILL:
            line = await child.stdout.readline()
            if not line:
                break  # the child died on its own: its stderr says why
            seq, message = json.loads(line)
            acked.append((seq, message))
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGKILL)
        rest = await child.stdout.read()
        returncode = await child.wait()
    # lines printed before the kill landed were acked too; a cut last line was not
    acked += [tuple(json.loads(line)) for line in rest.split(b"\n") if line]  # type: ignore[misc]
    return acked, returncode


async def test_every_acked_append_survives_sigkill(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    stderr = tmp_path / "child.stderr"
    acked, returncode = await _run_child_until_killed(store_factory.url, stderr)
    assert returncode == -signal.SIGKILL, stderr.read_text()
    assert len(acked) >= ACKS_BEFORE_KILL, stderr.read_text()
    assert len({seq for seq, _ in acked}) == len(acked)  # no seq acked twice

    store = await store_factory()
    for seq, message in acked:
        entry = await store.get(TIMELINE, seq)
        assert entry is not None, f"acked seq {seq} was lost"
        assert entry.message == message
    # what was committed but not yet acked may be there too; still gap-free
    last = await store.last_seq(TIMELINE)
    assert last >= max(seq for seq, _ in acked)
    stored: list[int] = []
    after = 0
    while True:
        page = await store.scan(TIMELINE, after=after, limit=1000)
        stored += [e.seq for e in page.entries]
        if not page.has_more:
            break
        after = stored[-1]
    assert stored == list(range(1, last + 1))
    # and the store keeps counting from there
    assert (await store.append(TIMELINE, {"after": "restart"})).seq == last + 1
