"""The interface every storage engine implements.

A backend stores and reads; it does not validate (the :class:`~tidings.timeline.Store`
in front of it does) and knows no clock (times are passed in). Its contract:

- ``append_many`` assigns ``seq = last_seq + 1`` per item inside one transaction,
  all items or none; a seq is never reused, even after the newest entry is
  deleted. When an item's ``client_id`` already exists in its timeline, nothing of
  the batch is written and the originals come back with ``replayed=True``.
- Scan bounds ``after`` and ``before`` are exclusive. Entries whose
  ``created_at`` is below ``not_before`` are treated as absent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from .model import Batch, EncodedAppend, Entry, Message, Page
from .reindexing import Progress, ReindexCounts
from .search import Candidate, Phrase, Scope, SearchConfig


class Backend(Protocol):
    # What the backend indexes for search (None: nothing). Index rows are
    # written in the same transaction as the entries and records they index.
    search_config: SearchConfig | None

    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None:
        """Finish writes in flight and release connections."""

    async def append_many(self, items: Sequence[EncodedAppend], now: float) -> Batch:
        """Append every item in one commit (see the module docstring)."""

    async def get(self, timeline_id: str, seq: int, not_before: float | None) -> Entry | None:
        """The entry at ``seq``, or None."""

    async def update(
        self, timeline_id: str, seq: int, fields: Message, encode: Callable[[Message], bytes]
    ) -> Entry | None:
        """Merge ``fields`` into the entry's message inside one transaction.

        ``encode`` turns the merged message into the stored bytes and raises when
        it is invalid (then nothing is written). None when the entry is absent.
        """

    async def delete(self, timeline_id: str, seq: int) -> None:
        """Remove the entry; absent is not an error."""

    async def heads(self, timeline_ids: Sequence[str]) -> dict[str, int]:
        """``last_seq`` of each timeline (0 for one never appended to)."""

    async def scan(
        self,
        timeline_id: str,
        after: int | None,
        before: int | None,
        limit: int,
        forward: bool,
        not_before: float | None,
    ) -> Page:
        """Entries with ``after < seq < before``, in scan order, at most ``limit``."""

    async def oldest_seq(self, timeline_id: str, not_before: float | None) -> int:
        """The lowest readable seq, or ``last_seq + 1`` when none is readable."""

    async def purge(
        self, kind: str, before: float, start_after: str | None, max_timelines: int
    ) -> tuple[int, str | None]:
        """Delete entries created before ``before`` in timelines ``kind:*``.

        Visits at most ``max_timelines`` timelines, in id order, after the id
        ``start_after``. Returns how many entries it deleted and the last id it
        visited (None once every timeline of the kind has been visited).
        """

    async def get_meta(self, timeline_id: str) -> dict[str, Any] | None: ...

    async def put_meta(self, timeline_id: str, fields: Mapping[str, Any]) -> None: ...

    async def update_meta(
        self,
        timeline_id: str,
        fields: Mapping[str, Any],
        add: Mapping[str, int],
        highest: Mapping[str, int],
    ) -> dict[str, Any]:
        """The record after ``model.merged_record(record, fields, add,
        highest)``, read and written atomically, created if absent."""

    async def delete_meta(self, timeline_id: str) -> None: ...

    async def find_meta(
        self, prefix: str, where: Mapping[str, Any], after: str | None, limit: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """Records whose id starts with ``prefix`` and whose fields equal ``where``,
        ordered by id, starting after the id ``after``."""

    async def search(
        self,
        phrases: Sequence[Phrase],
        scopes: Sequence[Scope],
        *,
        after: float | None,
        before: float | None,
        facet: str | None,
        cursor: tuple[float, str, int] | None,
        limit: int,
    ) -> list[Candidate]:
        """Indexed entries matching every phrase, within ``scopes`` (seq bounds
        inclusive), created in ``[after, before)``, with ``facet`` when given,
        strictly after ``cursor`` in newest-first order (descending
        ``(created_at, timeline_id, seq)``); the first ``limit`` of them, in that order."""

    async def search_meta(
        self, kind: str, query: str, limit: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """Indexed metadata records ``kind:*`` whose folded text contains the
        normalised ``query``: records with a value starting with it first, then by id."""

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """Held by one holder at a time per key, among every store on this
        database (see :mod:`tidings.timeline.locks`)."""

    async def reindex(self, *, full: bool, progress: Progress | None) -> ReindexCounts:
        """Rebuild the search index from the stored entries and metadata records
        (see :mod:`tidings.timeline.reindexing`), while other writes go on.
        ``full`` first drops the whole entry index. Raises InvalidInput when the
        backend indexes nothing."""
