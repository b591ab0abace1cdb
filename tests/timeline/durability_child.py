"""Child process of the durability test: appends forever and reports each ack.

Usage: python durability_child.py STORE_URL TIMELINE_ID WRITERS

Prints one JSON line ``[seq, message]`` per acknowledged append, flushed at
once, so that everything the parent has read was acked before the kill.
"""

from __future__ import annotations

import asyncio
import json
import sys

from tidings.timeline import open_store


async def main(url: str, timeline_id: str, writers: int) -> None:
    store = await open_store(url, purge_interval=None)

    async def write(writer: int) -> None:
        n = 0
        while True:
            n += 1
            message = {"writer": writer, "n": n, "text": f"message {n} of writer {writer}"}
            entry = await store.append(timeline_id, message)
            sys.stdout.write(json.dumps([entry.seq, message]) + "\n")
            sys.stdout.flush()

    await asyncio.gather(*(write(w) for w in range(writers)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
