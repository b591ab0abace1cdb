"""``tidings bench search``: how fast search answers, and what the index costs.

On a scratch store thrown away afterwards: store ``--messages`` chat messages
(mixed Chinese and English, character frequencies skewed like real text) in
``--conversations`` conversations; then, for a user who may read
``--readable`` of them, time searches of one, two and four CJK characters and
of English words (newest 20 hits); then time ``--appends`` single indexed
appends, 16 writers at once, for the tail a merge of the index's pending
list adds (on PostgreSQL with that merge in the background and in the
append that fills the list); then time sends with the index on and off,
64 concurrent senders, and report their ratio, at two levels on the same
store: the storage level (one history entry and two inbox copies per
``append_many``) and the product level (direct messages through
``tidings.im.messaging.send``, with its access checks, idempotency and
fan-out, between ``--im-users`` registered users). On PostgreSQL the tables
are vacuumed and analysed after the bulk load (what autovacuum does on a
server). ``--json`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..im import Context

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Common Chinese characters, most frequent first: messages draw from them with
# Zipf-like weights, so that a one-character query for a frequent character
# matches a large share of all messages (the hard case for an index).
HAN = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学"
    "对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面"
    "公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明社机定表物情打被五车亲"
    "书相别西教问正机信东条电万字该空许反风场代利音走题影听数刚常给重气安门变觉原梧桐树群模型凤"
)
WORDS = (
    "hello world timeline model search index message group update server client "
    "python sqlite postgres release deploy review merge branch commit test bug fix"
).split()
# How many sends run at once in the send probes (each acked once durable).
SENDERS = 64
# Messages are written in batches of this many (one commit each) while seeding.
SEED_BATCH = 500
SEED_WRITERS = 4
# Messages stored after the first timing of queries, before the second: on
# PostgreSQL about 85% of the GIN index's 4 MB pending list (VACUUM, run after
# the bulk load, leaves it empty), which every GIN search scans.
BACKLOG = 9_000
# Send probes per setting (index on, index off), alternating.
PROBE_ROUNDS = 3
# The append-latency probe: this many writers append one indexed message at a
# time each, so that the rare slow append (PostgreSQL merging its GIN pending
# list inside it) shows in the tail.
APPEND_WRITERS = 16
# The product-level probe: direct conversations per registered user (each
# conversation has two users, so a user is in about twice as many).
IM_DMS_PER_USER = 5


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--backend", choices=("sqlite", "postgres"), default="sqlite", help="default sqlite")
    add("--json", action="store_true", help="print one JSON object instead of a table")
    add("--messages", type=int, default=1_000_000, help="messages stored (default 1,000,000)")
    add("--conversations", type=int, default=2_000, help="conversations they are spread over")
    add("--readable", type=int, default=100, help="conversations the searching user reads")
    add("--queries", type=int, default=200, help="searches per query kind")
    add(
        "--backlog",
        type=int,
        default=BACKLOG,
        help=f"messages added before the second timing (default {BACKLOG:,})",
    )
    add("--sends", type=int, default=6_000, help="sends per send-throughput probe")
    add("--appends", type=int, default=30_000, help="appends of the append-latency probe")
    add("--im-users", type=int, default=200, help="users of the IM-level send probe")
    add("--dsn", default=DEFAULT_DSN, help=f"PostgreSQL server (default {DEFAULT_DSN})")
    add("--seed", type=int, default=1, help="seeds the workload")


def run(args: argparse.Namespace) -> int:
    import orjson

    if args.backlog < 0:
        print("tidings bench search: --backlog must not be negative")
        return 2
    for name in ("messages", "conversations", "readable", "queries", "sends", "appends"):
        if getattr(args, name) < 1:
            print(f"tidings bench search: --{name} must be at least 1")
            return 2
    if args.readable > args.conversations:
        print("tidings bench search: --readable must not exceed --conversations")
        return 2
    if args.im_users < 2:
        print("tidings bench search: --im-users must be at least 2")
        return 2
    report = asyncio.run(measure(args))
    print(orjson.dumps(report).decode() if args.json else describe(report))
    return 0


class Corpus:
    """Random chat text with skewed character frequencies."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.weights = [1 / (rank + 1) for rank in range(len(HAN))]

    def text(self) -> str:
        chars = self.random.choices(HAN, self.weights, k=self.random.randint(8, 30))
        text = "".join(chars)
        if self.random.random() < 0.3:  # some messages mix in English words
            at = self.random.randint(0, len(text))
            words = " ".join(self.random.choices(WORDS, k=self.random.randint(1, 3)))
            text = f"{text[:at]} {words.capitalize()} {text[at:]}"
        return text


@contextlib.asynccontextmanager
async def scratch(backend: str, dsn: str) -> AsyncIterator[str]:
    """A database URL, dropped afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="tidings-bench-search-") as directory:
            yield f"sqlite:///{os.path.join(directory, 'search.db')}"
        return
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    name = f"tidings_bench_search_{os.getpid()}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
        yield urlunsplit(urlsplit(dsn)._replace(path="/" + name))
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from ..im.search import SEARCH
    from ..timeline import Scope, open_store

    corpus = Corpus(args.seed)
    async with scratch(args.backend, args.dsn) as url:
        options: dict[str, Any] = {"purge_interval": None}
        if args.backend == "sqlite":
            options["synchronous"] = "NORMAL"  # seeding speed; probes below use FULL
        store = await open_store(url, search=SEARCH, **options)
        try:
            started = time.perf_counter()
            samples = await _seed(store, corpus, args.messages, args.conversations)
            seed_seconds = time.perf_counter() - started
        finally:
            await store.close()
        if args.backend == "postgres":
            await _analyze(url)
        # The backlog is left waiting: no merge of the pending list by this
        # process (a server merges it in the background after 7,000 of its own
        # messages; where several processes write, the list fills up).
        store = await open_store(url, search=SEARCH, purge_interval=None, merge_pending_after=None)
        try:
            chosen = corpus.random.sample(range(args.conversations), args.readable)
            scopes = [Scope(f"group:g{n}") for n in chosen]
            queries = _queries(corpus, samples, args.queries)
            latency = await _time_kinds(store, scopes, queries)
            # As a server sees it: new messages waiting to be merged into the
            # index (PostgreSQL's GIN pending list, SQLite's staging table).
            await _seed(store, corpus, args.backlog, args.conversations)
            backlog_latency = await _time_kinds(store, scopes, queries)
        finally:
            await store.close()
        appends = await _append_latencies(args.backend, url, corpus, args)
        sends = await _send_ratio(url, corpus, args.conversations, args.sends)
        im_sends, dms = await _im_send_ratio(url, corpus, args.im_users, args.sends)
    return {
        "backend": args.backend,
        "messages": args.messages,
        "conversations": args.conversations,
        "readable": args.readable,
        "queries_per_kind": args.queries,
        "seed_messages_per_s": round(args.messages / seed_seconds),
        "latency_ms": latency,
        "backlog": args.backlog,
        "latency_ms_backlog": backlog_latency,
        "appends": args.appends,
        "append_latency_ms": appends,
        **_send_figures("", sends),
        "im_users": args.im_users,
        "im_dms": dms,
        **_send_figures("im_", im_sends),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}",
    }


def _send_figures(prefix: str, rates: dict[str, float]) -> dict[str, Any]:
    """The report's figures of one send probe (``rates`` with the index on and off)."""
    ratio = rates["on"] / rates["off"]
    return {
        f"{prefix}sends_per_s_index_on": round(rates["on"]),
        f"{prefix}sends_per_s_index_off": round(rates["off"]),
        f"{prefix}send_ratio_on_over_off": round(ratio, 3),
        f"{prefix}index_overhead": round(1 - ratio, 3),
    }


async def _seed(store: Any, corpus: Corpus, count: int, conversations: int) -> list[str]:
    """Store ``count`` messages; returns a sample of their texts."""
    from ..timeline import Append

    samples: list[str] = []
    batches = [min(SEED_BATCH, count - start) for start in range(0, count, SEED_BATCH)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for size in batches:
        queue.put_nowait(size)

    async def writer() -> None:
        while not queue.empty():
            size = queue.get_nowait()
            items = []
            for _ in range(size):
                text = corpus.text()
                if corpus.random.random() < 0.01:
                    samples.append(text)
                target = f"group:g{corpus.random.randrange(conversations)}"
                items.append(Append(target, {"kind": "text", "text": text, "from": "u"}))
            await store.append_many(items)

    await asyncio.gather(*(writer() for _ in range(SEED_WRITERS)))
    return samples


async def _analyze(url: str) -> None:
    """VACUUM ANALYZE after the bulk load: the planner's statistics and the
    visibility map a server reaches with autovacuum, not those of a table that
    grew by a million rows a moment ago."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def _append_latencies(
    backend: str, url: str, corpus: Corpus, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """The append-latency probe: on PostgreSQL with the GIN pending list merged
    in the background (a server's default) and by the append that fills it;
    on SQLite once (its staged documents are merged by the commit that fills
    the staging table)."""
    modes: dict[str, dict[str, Any]] = {"default": {}}
    if backend == "postgres":
        modes = {"background_merge": {}, "merge_in_append": {"merge_pending_after": None}}
    return {
        mode: await _append_latency(url, corpus, args.conversations, args.appends, options)
        for mode, options in modes.items()
    }


async def _append_latency(
    url: str, corpus: Corpus, conversations: int, count: int, options: dict[str, Any]
) -> dict[str, float]:
    """Milliseconds per single indexed append, ``APPEND_WRITERS`` at a time, on
    a store opened with ``options``."""
    from ..im.search import SEARCH
    from ..timeline import Append, open_store

    took: list[float] = []
    store = await open_store(url, search=SEARCH, purge_interval=None, **options)
    try:
        pending = iter(range(count))

        async def writer() -> None:
            for _ in pending:
                target = f"group:g{corpus.random.randrange(conversations)}"
                message = {"kind": "text", "text": corpus.text(), "from": "u"}
                started = time.perf_counter()
                await store.append_many([Append(target, message)])
                took.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(writer() for _ in range(APPEND_WRITERS)))
    finally:
        await store.close()
    took.sort()

    def at(share: float) -> float:
        return round(took[min(len(took) - 1, int(len(took) * share))], 3)

    return {
        "p50": at(0.5),
        "p99": at(0.99),
        "p99_9": at(0.999),
        "max": round(took[-1], 3),
        "over_100ms": sum(1 for t in took if t > 100),
    }


def _queries(corpus: Corpus, samples: list[str], count: int) -> dict[str, list[str]]:
    from ..timeline.search import is_unspaced

    def cjk(length: int) -> list[str]:
        found: list[str] = []
        while len(found) < count:
            text = corpus.random.choice(samples)
            at = corpus.random.randrange(len(text))
            piece = text[at : at + length]
            if len(piece) == length and all(is_unspaced(ch) for ch in piece):
                found.append(piece)
        return found

    return {
        "cjk_1": [corpus.random.choice(HAN[:200]) for _ in range(count)],
        "cjk_2": cjk(2),
        "cjk_4": cjk(4),
        "english": [corpus.random.choice(WORDS) for _ in range(count)],
    }


async def _time_kinds(
    store: Any, scopes: list[Any], queries: dict[str, list[str]]
) -> dict[str, dict[str, float]]:
    return {kind: await _time_queries(store, scopes, texts) for kind, texts in queries.items()}


async def _time_queries(store: Any, scopes: list[Any], queries: list[str]) -> dict[str, float]:
    took = []
    hits = 0
    for query in queries:
        started = time.perf_counter()
        page = await store.search(query, scopes, limit=20)
        took.append((time.perf_counter() - started) * 1000)
        hits += len(page.hits)
    took.sort()
    return {
        "p50": round(took[len(took) // 2], 3),
        "p99": round(took[min(len(took) - 1, int(len(took) * 0.99))], 3),
        "mean_hits": round(hits / len(queries), 1),
    }


async def _alternate(url: str, probe: Callable[[Any], Awaitable[float]]) -> dict[str, float]:
    """The median of ``probe(store)`` (a rate) with the index on and off, the
    store at ``url`` opened afresh for each run, alternating (on, off, on,
    off…, ``PROBE_ROUNDS`` each) to even out drift; the median leaves out a
    run that an outside stall (a slow fsync, another process) spoiled."""
    from ..im.search import SEARCH
    from ..timeline import open_store

    rates: dict[str, list[float]] = {"on": [], "off": []}
    for mode in ("on", "off") * PROBE_ROUNDS:
        config = SEARCH if mode == "on" else None
        store = await open_store(url, search=config, purge_interval=None)
        try:
            rates[mode].append(await probe(store))
        finally:
            await store.close()
    return {mode: statistics.median(values) for mode, values in rates.items()}


async def _concurrently(sender: Callable[[], Coroutine[Any, Any, None]]) -> float:
    """Run ``SENDERS`` copies of ``sender`` at once; returns the seconds they
    took. The first error cancels the others and is raised."""
    started = time.perf_counter()
    async with asyncio.TaskGroup() as senders:
        for _ in range(SENDERS):
            senders.create_task(sender())
    return time.perf_counter() - started


async def _send_ratio(url: str, corpus: Corpus, conversations: int, count: int) -> dict[str, float]:
    """Sends/s at the storage level with the index on and off; each send is a
    history entry plus two inbox copies."""

    async def probe(store: Any) -> float:
        texts = [corpus.text() for _ in range(count)]
        return await _sends_per_second(store, corpus, texts, conversations)

    return await _alternate(url, probe)


async def _sends_per_second(
    store: Any, corpus: Corpus, texts: list[str], conversations: int
) -> float:
    from ..timeline import Append

    pending = iter(texts)

    async def sender() -> None:
        for text in pending:
            dm = f"dm:u{corpus.random.randrange(conversations)}:v"
            message = {"kind": "text", "text": text, "from": "u"}
            await store.append_many(
                [Append(dm, message), Append("inbox:u", message, ref=0)]
                + [Append("inbox:v", message, ref=0)]
            )

    return len(texts) / await _concurrently(sender)


# One send of the IM-level probe: sender, conversation, text, client message id.
Send = tuple[str, str, str, str]


async def _im_send_ratio(
    url: str, corpus: Corpus, users: int, count: int
) -> tuple[dict[str, float], int]:
    """Sends/s through the IM layer (``messaging.send``) with the index on and
    off, and how many direct conversations they went to.

    ``users`` users are registered (accepting direct messages from anyone, the
    default ``dm_policy``) and paired at random into direct conversations, each
    opened by one message with the index on, as the server runs. Every probe
    gets a new context that knows these users and conversations (as a running
    server does after their first message), so none of them pays a first
    send's bookkeeping.
    """
    from ..im import Context, IMSettings
    from ..im.search import SEARCH
    from ..timeline import open_store

    # Cheap password hashes: registering is set-up, not what is measured.
    settings = IMSettings(password_time_cost=1, password_memory_kib=1024)
    store = await open_store(url, search=SEARCH, purge_interval=None)
    try:
        warm = Context(store, settings)
        dms = await _im_setup(warm, corpus, users)
    finally:
        await store.close()

    async def probe(store: Any) -> float:
        ctx = Context(
            store, settings, known_users=set(warm.known_users), known_dms=set(warm.known_dms)
        )
        sends = [_im_send(corpus, corpus.random.choice(dms)) for _ in range(count)]
        return await _im_sends_per_second(ctx, sends)

    return await _alternate(url, probe), len(dms)


async def _im_setup(ctx: Context, corpus: Corpus, count: int) -> list[tuple[str, str]]:
    """Register ``count`` users and open direct conversations between random
    pairs of them (one message each); returns the pairs."""
    import itertools

    from ..im import accounts

    users = [f"bench{n:05}" for n in range(count)]
    registered = asyncio.Queue[str]()
    for user in users:
        registered.put_nowait(user)

    async def register() -> None:
        while not registered.empty():
            await accounts.register(ctx, registered.get_nowait(), "bench password")

    await asyncio.gather(*(register() for _ in range(SEED_WRITERS)))
    pairs = list(itertools.combinations(users, 2))
    dms = corpus.random.sample(pairs, min(len(pairs), count * IM_DMS_PER_USER))
    await _im_sends_per_second(ctx, [_im_send(corpus, pair) for pair in dms])
    return dms


def _im_send(corpus: Corpus, pair: tuple[str, str]) -> Send:
    """A message from either user of ``pair`` to the other, with its client id."""
    from ..im import names

    sender = pair[corpus.random.randrange(2)]
    return sender, names.dm(*pair), corpus.text(), uuid.uuid4().hex


async def _im_sends_per_second(ctx: Context, sends: list[Send]) -> float:
    """Send them all through ``messaging.send``; any error, or an ack for a
    message stored before (a replay), fails the benchmark."""
    from ..im import messaging

    pending = iter(sends)
    accepted = 0

    async def sender() -> None:
        nonlocal accepted
        for user, conversation, text, client_msg_id in pending:
            ack = await messaging.send(
                ctx, user, conversation, text=text, client_msg_id=client_msg_id
            )
            if ack.duplicate:
                raise RuntimeError(f"send {client_msg_id} of {user} was a replay")
            accepted += 1

    elapsed = await _concurrently(sender)
    if accepted != len(sends):
        raise RuntimeError(f"{accepted} of {len(sends)} sends accepted")
    return accepted / elapsed


def describe(report: dict[str, Any]) -> str:
    lines = [
        f"tidings bench search: {report['backend']}, {report['machine']}",
        f"{report['messages']:,} messages in {report['conversations']:,} conversations; "
        f"the searcher reads {report['readable']}; "
        f"seeded at {report['seed_messages_per_s']:,} messages/s",
        "",
        f"{'query':12}{'p50 ms':>10}{'p99 ms':>10}{'hits':>8}",
    ]
    lines += _latency_lines(report["latency_ms"])
    lines += ["", f"after {report['backlog']:,} more messages (not yet merged into the index):"]
    lines += _latency_lines(report["latency_ms_backlog"])
    lines += [
        "",
        f"{report['appends']:,} single indexed appends, {APPEND_WRITERS} writers at once:",
    ]
    lines += [
        f"  {mode}: p50 {f['p50']:.2f} ms, p99 {f['p99']:.2f}, p99.9 {f['p99_9']:.2f}, "
        f"max {f['max']:.2f}; over 100 ms: {f['over_100ms']}"
        for mode, f in report["append_latency_ms"].items()
    ]
    lines += [
        "",
        f"storage sends/s (append_many, {SENDERS} senders, durable): "
        f"index on {report['sends_per_s_index_on']:,}, off {report['sends_per_s_index_off']:,}; "
        f"on/off {report['send_ratio_on_over_off']:.3f} "
        f"(overhead {report['index_overhead']:.1%})",
        f"IM sends/s (messaging.send, {SENDERS} senders, {report['im_dms']:,} DMs of "
        f"{report['im_users']:,} users): index on {report['im_sends_per_s_index_on']:,}, "
        f"off {report['im_sends_per_s_index_off']:,}; "
        f"on/off {report['im_send_ratio_on_over_off']:.3f} "
        f"(overhead {report['im_index_overhead']:.1%})",
    ]
    return "\n".join(lines)


def _latency_lines(latency: dict[str, dict[str, float]]) -> list[str]:
    return [
        f"{kind:12}{figures['p50']:>10.2f}{figures['p99']:>10.2f}{figures['mean_hits']:>8.1f}"
        for kind, figures in latency.items()
    ]
