"""The public face of the timeline library: validation, retention, the clock.

A :class:`Store` wraps one :class:`~tidings.timeline.backend.Backend` and is what
every caller uses. Open one with :func:`open_store`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

import orjson

from ..errors import InvalidInput, NotFound, TooLarge
from . import searching
from .backend import Backend
from .model import Append, Batch, Direction, EncodedAppend, Entry, Message, Page
from .reindexing import ReindexCounts
from .search import Scope, SearchConfig, SearchPage

log = logging.getLogger(__name__)

# 64 KiB holds a long text message with room for structured fields; larger
# payloads (files) belong in blob storage with a reference in the message.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
# Ids are keys of every index; 200 characters fits "dm:<user>:<user>" with the
# longest usernames while keeping index pages dense.
MAX_TIMELINE_ID_CHARS = 200
MAX_CLIENT_ID_CHARS = 128
# Seqs are 64-bit integers in every backend.
MAX_SEQ = 2**63 - 1
# A page is read in one statement and held in memory; 1,000 bounds both.
MAX_SCAN_LIMIT = 1000
# A purge pass works through this many timelines per transaction so that
# writers queued behind it are never stalled for long.
PURGE_SLICE = 200

Clock = Callable[[], float]


class Store:
    """An opened timeline store.

    Timeline ids are strings ``kind:rest`` (``inbox:alice``); the kind selects the
    retention rule. All methods are coroutines and safe to call concurrently.

    Args:
        backend: the storage engine.
        retention: seconds to keep entries, per timeline kind; kinds not named
            keep entries forever.
        max_message_bytes: the largest encoded message accepted.
        clock: returns the current Unix time in seconds (inject it in tests).
        purge_interval: seconds between background purges of expired entries;
            None runs no background purge (call :meth:`purge_expired` yourself).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        retention: Mapping[str, float] | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        clock: Clock = time.time,
        purge_interval: float | None = 3600.0,
    ) -> None:
        self.backend = backend
        self.retention = dict(retention or {})
        self.max_message_bytes = max_message_bytes
        self.clock = clock
        self._purge_interval = purge_interval
        self._purger: asyncio.Task[None] | None = None
        self._opened = False

    async def open(self) -> Store:
        """Open the backend; opening an open store does nothing, so that
        ``async with await open_store(url) as store:`` works."""
        if self._opened:
            return self
        await self.backend.open()
        self._opened = True
        if self.retention and self._purge_interval:
            self._purger = asyncio.create_task(self._purge_forever(self._purge_interval))
        return self

    async def close(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
            self._purger = None
        if self._opened:
            self._opened = False
            await self.backend.close()

    async def __aenter__(self) -> Store:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- entries ---------------------------------------------------------------

    async def append(
        self, timeline_id: str, message: Message, *, client_id: str | None = None
    ) -> Entry:
        """Append ``message`` to a timeline; its seq is ``last_seq + 1``.

        Args:
            timeline_id: the timeline.
            message: a JSON object (a dict with string keys).
            client_id: an idempotency key unique within the timeline. When an entry
                with this key exists, it is returned and nothing is written.

        Returns:
            The entry as committed (or the original, for a repeated client id).

        Raises:
            InvalidInput: a bad id, a message that is not a JSON object.
            TooLarge: the encoded message is over ``max_message_bytes``.
        """
        batch = await self.append_many([Append(timeline_id, message, client_id)])
        return batch.entries[0]

    async def append_many(self, items: Sequence[Append]) -> Batch:
        """Append entries to many timelines in one atomic commit.

        Every item is validated first; one bad item rejects the batch and nothing
        is written. Items of the same timeline get consecutive seqs in item order.
        Identical messages in one batch are stored once (a message fanned out to
        many inboxes costs one copy).

        When any item's ``client_id`` is already present in its timeline, the
        batch is a retry of one already committed: nothing is written and the
        result has ``replayed=True`` (see :class:`Batch`).

        Raises:
            InvalidInput, TooLarge: as for :meth:`append`.
        """
        if not items:
            raise InvalidInput("append_many needs at least one item")
        encoded: list[EncodedAppend] = []
        bodies: dict[int, bytes] = {}  # one encoding per distinct message object
        for index, item in enumerate(items):
            _check_timeline_id(item.timeline_id)
            _check_client_id(item.client_id)
            if item.ref is not None and (
                isinstance(item.ref, bool)
                or not isinstance(item.ref, int)
                or not 0 <= item.ref < index
            ):
                raise InvalidInput(f"item {index}: ref must be the index of an earlier item")
            body = bodies.get(id(item.message))
            if body is None:
                body = bodies[id(item.message)] = self.encode(item.message)
            encoded.append(EncodedAppend(item.timeline_id, body, item.client_id, item.ref))
        return await self.backend.append_many(encoded, self.clock())

    async def get(self, timeline_id: str, seq: int) -> Entry | None:
        """The entry at ``seq``, or None when it is absent, deleted or expired."""
        _check_timeline_id(timeline_id)
        _check_seq(seq, "seq")
        return await self.backend.get(timeline_id, seq, self._cutoff(timeline_id))

    async def update(
        self,
        timeline_id: str,
        seq: int,
        fields: Message,
        *,
        check: Callable[[Message], None] | None = None,
    ) -> Entry:
        """Merge ``fields`` into the message at ``seq`` (top-level keys replace).

        Args:
            check: called with the merged message inside the write, before it
                is stored; whatever it raises cancels the update (a condition on
                the entry's current state that no concurrent write can slip
                past).

        Returns:
            The updated entry (same seq, same ``created_at``).

        Raises:
            NotFound: no entry at ``seq``.
            InvalidInput, TooLarge: ``fields`` is not a JSON object, or the merged
                message is too large. Nothing is written.
        """
        _check_timeline_id(timeline_id)
        _check_seq(seq, "seq")
        if not isinstance(fields, dict):
            raise InvalidInput("fields must be a JSON object")
        encode: Callable[[Message], bytes] = self.encode
        if check is not None:
            encode = functools.partial(self._checked_encode, check)
        entry = await self.backend.update(timeline_id, seq, fields, encode)
        if entry is None:
            raise NotFound(f"no entry {seq} in timeline {timeline_id!r}")
        return entry

    async def delete(self, timeline_id: str, seq: int) -> None:
        """Remove the entry at ``seq``. Deleting an absent entry is not an error;
        the seq is never handed out again."""
        _check_timeline_id(timeline_id)
        _check_seq(seq, "seq")
        await self.backend.delete(timeline_id, seq)

    async def last_seq(self, timeline_id: str) -> int:
        """The highest seq ever assigned in the timeline (0 when none was)."""
        _check_timeline_id(timeline_id)
        return (await self.backend.heads([timeline_id]))[timeline_id]

    async def heads(self, timeline_ids: Sequence[str]) -> dict[str, int]:
        """``last_seq`` of many timelines in one read."""
        for timeline_id in timeline_ids:
            _check_timeline_id(timeline_id)
        if not timeline_ids:
            return {}
        return await self.backend.heads(list(dict.fromkeys(timeline_ids)))

    async def latest(self, timeline_id: str) -> Entry | None:
        """The newest readable entry, or None."""
        page = await self.scan(timeline_id, limit=1, direction=Direction.BACKWARD)
        return page.entries[0] if page.entries else None

    async def scan(
        self,
        timeline_id: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int = 100,
        direction: Direction | str = Direction.FORWARD,
    ) -> Page:
        """Read a page of a timeline.

        Returns the entries with ``after < seq < before`` (both bounds exclusive,
        either may be None for open), ascending when ``direction`` is forward and
        descending when backward, at most ``limit`` of them, and whether more
        entries remain in the range past the page. Deleted and expired entries are
        skipped.

        Newest-N is ``scan(t, limit=N, direction="backward")``. To page forward,
        pass the last seq of a page as the next ``after``; backward, as the next
        ``before``: every entry is visited exactly once.

        Raises:
            InvalidInput: a bound that is not a non-negative integer, ``after >=
                before``, ``limit`` outside 1..1000, an unknown direction.
        """
        _check_timeline_id(timeline_id)
        if after is not None:
            _check_seq(after, "after", minimum=0)
        if before is not None:
            _check_seq(before, "before", minimum=1)
        if after is not None and before is not None and after >= before:
            raise InvalidInput(f"empty range: after ({after}) must be below before ({before})")
        _check_limit(limit)
        try:
            forward = Direction(direction) is Direction.FORWARD
        except ValueError:
            raise InvalidInput("direction must be 'forward' or 'backward'") from None
        return await self.backend.scan(
            timeline_id, after, before, limit, forward, self._cutoff(timeline_id)
        )

    async def oldest_seq(self, timeline_id: str) -> int:
        """The lowest seq still readable; ``last_seq + 1`` when none is.

        A reader whose cursor is below ``oldest_seq - 1`` has missed entries that
        retention (or a delete) removed, and should fall back to another source.
        """
        _check_timeline_id(timeline_id)
        return await self.backend.oldest_seq(timeline_id, self._cutoff(timeline_id))

    async def purge_expired(self) -> int:
        """Delete every entry past its kind's retention. Returns how many."""
        total = 0
        now = self.clock()
        for kind, ttl in self.retention.items():
            position: str | None = None
            while True:
                deleted, position = await self.backend.purge(kind, now - ttl, position, PURGE_SLICE)
                total += deleted
                if position is None:
                    break
        return total

    async def _purge_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                deleted = await self.purge_expired()
            except Exception:
                log.exception("purge of expired entries failed; retrying next interval")
            else:
                log.info("purged %d expired entries", deleted)

    # -- metadata --------------------------------------------------------------

    async def get_meta(self, timeline_id: str) -> dict[str, Any] | None:
        """The metadata record of a timeline, or None."""
        _check_timeline_id(timeline_id)
        return await self.backend.get_meta(timeline_id)

    async def put_meta(self, timeline_id: str, fields: Mapping[str, Any]) -> None:
        """Store ``fields`` as the record, replacing any previous one."""
        _check_timeline_id(timeline_id)
        self.encode(fields)
        await self.backend.put_meta(timeline_id, fields)

    async def update_meta(
        self,
        timeline_id: str,
        fields: Mapping[str, Any],
        *,
        add: Mapping[str, int] | None = None,
        highest: Mapping[str, int] | None = None,
    ) -> dict[str, Any]:
        """Merge ``fields`` into the record (a None value removes that key),
        creating it when absent. Returns the merged record.

        ``add`` adds integers to fields (a counter: ``{"members": 1}``; an
        absent field counts as 0), and ``highest`` raises fields to at least
        the given integers (a mark that only moves forward: ``{"seq": 12}``; an
        absent field takes the value), in the same atomic step, so concurrent
        updates, from other nodes too, never lose one another's changes.

        Raises:
            InvalidInput: ``add`` or ``highest`` names a field that is set or
                changed otherwise too, or holds something other than an
                integer; a field to change holds something other than an
                integer.
        """
        _check_timeline_id(timeline_id)
        self.encode(fields)
        add, highest = dict(add or {}), dict(highest or {})
        for argument, changes, others in (("add", add, highest), ("highest", highest, add)):
            for key, value in changes.items():
                if not isinstance(key, str):
                    raise InvalidInput("field names are strings", field=argument)
                if key in fields or key in others:
                    raise InvalidInput(f"{key!r} is changed twice", field=argument)
                if not isinstance(value, int) or isinstance(value, bool) or abs(value) >= 2**53:
                    raise InvalidInput(f"{key!r} takes an integer", field=argument)
        return await self.backend.update_meta(timeline_id, fields, add, highest)

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """An async context manager held by one holder at a time per ``key``,
        among every store on this database: in this process and, on
        PostgreSQL, on every node (an advisory lock). For read-modify-write
        steps that an atomic update cannot express, such as "add the user
        unless already a member, and only while the group has room".

        Hold it briefly: on PostgreSQL it keeps a pooled connection, and a
        holder waits at most ``locks.ADVISORY_WAIT_S`` (then Unavailable).
        Not reentrant.

        Raises:
            InvalidInput: ``key`` is not a non-empty string.
        """
        if not isinstance(key, str) or not key:
            raise InvalidInput("a lock key is a non-empty string", field="key")
        return self.backend.lock(key)

    async def delete_meta(self, timeline_id: str) -> None:
        """Remove the record; absent is not an error."""
        _check_timeline_id(timeline_id)
        await self.backend.delete_meta(timeline_id)

    async def find_meta(
        self,
        prefix: str = "",
        *,
        where: Mapping[str, Any] | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Records whose timeline id starts with ``prefix`` and whose fields equal
        every item of ``where`` (strings, numbers, booleans), ordered by id.

        Page with ``after`` set to the last id of the previous page.
        """
        if not isinstance(prefix, str):
            raise InvalidInput("prefix must be a string")
        if after is not None and not isinstance(after, str):
            raise InvalidInput("after must be a timeline id")
        _check_limit(limit)
        where = dict(where or {})
        for key, value in where.items():
            if not isinstance(value, str | int | float | bool) or value is None:
                raise InvalidInput(f"where[{key!r}] must be a string, number or boolean")
        return await self.backend.find_meta(prefix, where, after, limit)

    # -- search ----------------------------------------------------------------

    async def search(
        self,
        query: str,
        scopes: Sequence[Scope],
        *,
        after: float | None = None,
        before: float | None = None,
        facet: str | None = None,
        order: str = "newest",
        cursor: str | None = None,
        limit: int = 20,
    ) -> SearchPage:
        """Find indexed entries whose text matches ``query``.

        Only the timelines and seq ranges of ``scopes`` are searched: the caller
        decides what may be read and passes it in. Matching is described in
        ``docs/search.md``: every white-space separated part of the query must
        occur (CJK by character bigrams, other scripts by word, the last word
        as a prefix), case-insensitively. Query syntax does not exist: any text
        is a valid query, and one without letters or digits matches nothing.

        Args:
            query: the text to find (the first 200 characters are used).
            scopes: the timelines to search, each with its readable seq bounds
                (inclusive), at most ``MAX_SCOPES``, each named once.
            after, before: only entries created at ``after <= t < before``.
            facet: only entries whose facet field (``SearchConfig.facet``) equals this.
            order: "newest" (newest first) or "relevance" (best of the newest
                ``RELEVANCE_POOL`` matches first).
            cursor: the ``cursor`` of the previous page, to get the next one.
            limit: hits per page, 1 to 100.

        Returns:
            A page of hits (timeline id, seq, time, facet, marked snippet) and
            the cursor of the next page (None when there is none).

        Raises:
            InvalidInput: bad scopes, bounds, order, limit or cursor.
        """
        return await searching.search(
            self.backend,
            query,
            scopes,
            after=after,
            before=before,
            facet=facet,
            order=order,
            cursor=cursor,
            limit=limit,
        )

    async def search_meta(
        self, kind: str, query: str, *, limit: int = 20
    ) -> list[tuple[str, dict[str, Any]]]:
        """Metadata records ``kind:*`` (kinds named in ``SearchConfig.meta``) whose
        id or indexed fields contain ``query`` (case-insensitive; any script).
        Records with a field starting with the query come first, then by id.

        Raises:
            InvalidInput: a bad kind, a query that is not a string, a bad limit.
        """
        return await searching.search_meta(self.backend, kind, query, limit)

    async def reindex(
        self,
        *,
        full: bool = False,
        progress: Callable[[ReindexCounts], None] | None = None,
    ) -> ReindexCounts:
        """Rebuild the search index from what is stored, while the store (and
        other processes on the same database) go on reading and writing.

        Every timeline of a kind the store's :class:`SearchConfig` indexes gets
        exactly the index rows an append would have written for its entries as
        they are now (an edited message by its new text, a recalled one not at
        all), in batches of ``reindexing.ENTRY_PAGE`` entries, one transaction
        each; rows of kinds no longer indexed are removed; metadata records of
        the configured kinds get their ``search_meta`` text. Entries written
        during the rebuild end up indexed once. Running it again changes
        nothing (``rewritten == 0``). See ``docs/search.md``.

        Args:
            full: first drop the whole entry index at once. Needed on SQLite
                after the term rules changed (its FTS5 index removes a row by
                the terms it holds, recomputed by the current rules); searches
                then miss the timelines not yet rebuilt. PostgreSQL replaces
                rows by key and needs it never (it changes nothing there).
            progress: called with the counts so far after every batch.

        Returns:
            Timelines visited, entries and metadata records indexed, and index
            rows changed.

        Raises:
            InvalidInput: the store was opened without ``search``.
        """
        if self.backend.search_config is None:
            raise InvalidInput("the store indexes nothing: open it with search=SearchConfig(...)")
        return await self.backend.reindex(full=full, progress=progress)

    # -- helpers ---------------------------------------------------------------

    def _checked_encode(self, check: Callable[[Message], None], message: Message) -> bytes:
        check(message)
        return self.encode(message)

    def encode(self, message: Mapping[str, Any]) -> bytes:
        """Encode a message for storage, or raise InvalidInput / TooLarge."""
        if not isinstance(message, dict):
            raise InvalidInput("a message must be a JSON object")
        try:
            body = orjson.dumps(message)
        except TypeError as exc:
            raise InvalidInput(f"a message must be plain JSON: {exc}") from None
        if len(body) > self.max_message_bytes:
            raise TooLarge(
                f"message is {len(body)} bytes; the limit is {self.max_message_bytes}",
                limit=self.max_message_bytes,
            )
        return body

    def _cutoff(self, timeline_id: str) -> float | None:
        ttl = self.retention.get(timeline_id.partition(":")[0])
        return None if ttl is None else self.clock() - ttl


def _check_timeline_id(timeline_id: object) -> None:
    if not isinstance(timeline_id, str) or not timeline_id:
        raise InvalidInput("a timeline id must be a non-empty string")
    if len(timeline_id) > MAX_TIMELINE_ID_CHARS:
        raise InvalidInput(f"a timeline id is at most {MAX_TIMELINE_ID_CHARS} characters")
    if not _storable(timeline_id):
        raise InvalidInput("a timeline id must be valid UTF-8 text without NUL characters")


def _check_client_id(client_id: object) -> None:
    if client_id is None:
        return
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= MAX_CLIENT_ID_CHARS:
        raise InvalidInput(f"a client id must be a string of 1 to {MAX_CLIENT_ID_CHARS} characters")
    if not _storable(client_id):
        raise InvalidInput("a client id must be valid UTF-8 text without NUL characters")


def _storable(text: str) -> bool:
    """Whether every backend can store ``text`` as a key: PostgreSQL text holds
    no NUL, and lone surrogates are not UTF-8."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check_limit(limit: object) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SCAN_LIMIT:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_SCAN_LIMIT}")


def _check_seq(seq: object, name: str, minimum: int = 1) -> None:
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise InvalidInput(f"{name} must be an integer")
    if not minimum <= seq <= MAX_SEQ:
        raise InvalidInput(f"{name} must be from {minimum} to {MAX_SEQ}")


async def open_store(url: str, **options: Any) -> Store:
    """Open the store at ``url`` and apply pending migrations.

    ``sqlite:///relative/file.db``, ``sqlite:////absolute/file.db`` (the embedded
    default) or ``postgresql://user@host:port/db``. ``options`` go to
    :class:`Store` (retention, max_message_bytes, clock, purge_interval), except
    ``synchronous`` (SQLite: "FULL" or "NORMAL"), ``merge_pending_after``
    (PostgreSQL: index rows after which a process merges the search index's
    pending list in the background, None for never; see
    ``postgres_search.MERGE_PENDING_AFTER``) and ``search`` (a
    :class:`SearchConfig`: what to index; nothing by default), which go to the backend.
    """
    backend: Backend
    search: SearchConfig | None = options.pop("search", None)
    if search is not None and not isinstance(search, SearchConfig):
        raise InvalidInput("search must be a SearchConfig")
    if url.startswith("sqlite://"):
        from .sqlite import SQLiteBackend

        path = url.removeprefix("sqlite://")
        if path.startswith("/"):
            path = path[1:]
        if not path:
            raise InvalidInput("a sqlite URL names a file: sqlite:///path/to/file.db")
        synchronous = options.pop("synchronous", "FULL")
        options.pop("merge_pending_after", None)
        backend = SQLiteBackend(path, synchronous=synchronous, search=search)
    elif url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresBackend

        options.pop("synchronous", None)
        backend_options = {}
        if "merge_pending_after" in options:
            backend_options["merge_pending_after"] = options.pop("merge_pending_after")
        backend = PostgresBackend(url, search=search, **backend_options)
    else:
        raise InvalidInput(f"unsupported store URL {url!r}: use sqlite:/// or postgresql://")
    return await Store(backend, **options).open()
