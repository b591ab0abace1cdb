"""Values the timeline library hands out and takes in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..errors import InvalidInput

Message = dict[str, Any]


def merged_record(
    record: Mapping[str, Any] | None,
    fields: Mapping[str, Any],
    add: Mapping[str, int],
    highest: Mapping[str, int],
) -> dict[str, Any]:
    """A metadata record after ``Store.update_meta(fields, add=add, highest=highest)``.

    Raises:
        InvalidInput: a field to add to or raise holds something other than an
            integer.
    """
    merged = dict(record or {})
    for key, value in fields.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    for argument, changes in (("add", add), ("highest", highest)):
        for key, value in changes.items():
            current = merged.get(key)
            if current is None:
                merged[key] = value
            elif not isinstance(current, int) or isinstance(current, bool):
                raise InvalidInput(f"{key!r} holds {current!r}, not an integer", field=argument)
            else:
                merged[key] = current + value if argument == "add" else max(current, value)
    return merged


class Direction(StrEnum):
    FORWARD = "forward"
    BACKWARD = "backward"


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored message of a timeline.

    ``seq`` is the entry's position in its timeline (1, 2, 3, …), assigned in the
    commit that wrote it; ``created_at`` is the commit's clock reading in Unix
    seconds. ``ref`` is the ``(timeline_id, seq)`` of the entry this one was
    appended alongside and points at (see :class:`Append`), or None.
    """

    timeline_id: str
    seq: int
    message: Message
    created_at: float
    client_id: str | None = None
    ref: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Append:
    """One item of :meth:`Store.append_many`: what to append where.

    ``ref`` is the index of an earlier item of the same batch; the new entry then
    records that item's timeline id and assigned seq as its ``Entry.ref``. This
    is how a fan-out entry (an inbox row) points at the history entry it copies
    without knowing its seq in advance.
    """

    timeline_id: str
    message: Message
    client_id: str | None = None
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class EncodedAppend:
    """An :class:`Append` with its message encoded, as a backend receives it.

    Items that carry the same message share one ``body`` object.
    """

    timeline_id: str
    body: bytes
    client_id: str | None
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """What :meth:`Store.append_many` did.

    When ``replayed`` is false the batch was written and ``entries`` holds one new
    entry per item, in item order. When it is true, a client id of the batch was
    already present (the batch is a retry of one committed earlier): nothing was
    written, and ``entries`` holds the original entries of the items whose client
    id was found, in item order.
    """

    entries: tuple[Entry, ...]
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a scan: entries in scan order, and whether more remain past it."""

    entries: tuple[Entry, ...]
    has_more: bool

    @property
    def last_seq(self) -> int | None:
        """The seq to pass as the next page's bound, or None for an empty page."""
        return self.entries[-1].seq if self.entries else None
