"""What :meth:`Store.search` and :meth:`Store.search_meta` do in front of a
backend: check the arguments, page, rank, cut snippets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InvalidInput
from .backend import Backend
from .search import (
    MAX_SCOPES,
    MAX_SEARCH_LIMIT,
    RELEVANCE_POOL,
    Candidate,
    Hit,
    Phrase,
    Scope,
    SearchPage,
    decode_cursor,
    encode_cursor,
    fold,
    literal,
    parse_query,
    snippet,
)

ORDERS = ("newest", "relevance")


async def search(
    backend: Backend,
    query: object,
    scopes: Sequence[Scope],
    *,
    after: float | None = None,
    before: float | None = None,
    facet: str | None = None,
    order: str = "newest",
    cursor: str | None = None,
    limit: int = 20,
) -> SearchPage:
    """See :meth:`Store.search`."""
    phrases = parse_query(query)
    _check_scopes(scopes)
    for name, value in (("after", after), ("before", before)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidInput(f"{name} must be a time in Unix seconds", field=name)
    if facet is not None and not isinstance(facet, str):
        raise InvalidInput("facet must be a string", field="facet")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_SEARCH_LIMIT}", field="limit")
    if order not in ORDERS:
        raise InvalidInput("order must be 'newest' or 'relevance'", field="order")
    if cursor is not None and not isinstance(cursor, str):
        raise InvalidInput("the cursor is not valid", field="cursor")
    position = None
    if cursor is not None and order == "newest":
        at, timeline_id, seq = decode_cursor(cursor, (float, str, int))
        position = (float(at), timeline_id, seq)
    offset = 0
    if cursor is not None and order == "relevance":
        offset = decode_cursor(cursor, (int,))[0]
        if offset < 0:
            raise InvalidInput("the cursor is not valid", field="cursor")
    if not phrases or not scopes or backend.search_config is None:
        return SearchPage((), None)
    if order == "relevance":
        return await _by_relevance(backend, phrases, scopes, after, before, facet, offset, limit)
    found = await backend.search(
        phrases,
        scopes,
        after=after,
        before=before,
        facet=facet,
        cursor=position,
        limit=limit + 1,
    )
    page = found[:limit]
    more = encode_cursor(page[-1].key()) if len(found) > limit else None
    return SearchPage(tuple(_hit(c, phrases) for c in page), more)


async def _by_relevance(
    backend: Backend,
    phrases: list[Phrase],
    scopes: Sequence[Scope],
    after: float | None,
    before: float | None,
    facet: str | None,
    offset: int,
    limit: int,
) -> SearchPage:
    """The newest ``RELEVANCE_POOL`` matches, best first; the cursor is an offset."""
    pool = await backend.search(
        phrases,
        scopes,
        after=after,
        before=before,
        facet=facet,
        cursor=None,
        limit=RELEVANCE_POOL,
    )
    ranked = sorted(pool, key=lambda c: _score(c, phrases), reverse=True)
    page = ranked[offset : offset + limit]
    more = encode_cursor([offset + limit]) if offset + limit < len(ranked) else None
    return SearchPage(tuple(_hit(c, phrases) for c in page), more)


def _score(candidate: Candidate, phrases: Sequence[Phrase]) -> tuple[float, float]:
    """More occurrences of the query in a shorter text rank higher; then newer."""
    text = fold(candidate.text)
    found = 0
    for p in phrases:
        found += max(1, text.count(literal(p)))
    return (found / (1 + len(text) / 100), candidate.created_at)


def _hit(candidate: Candidate, phrases: Sequence[Phrase]) -> Hit:
    return Hit(
        candidate.timeline_id,
        candidate.seq,
        candidate.created_at,
        candidate.facet,
        snippet(candidate.text, phrases),
    )


def _check_scopes(scopes: object) -> None:
    if not isinstance(scopes, list | tuple):
        raise InvalidInput("scopes must be a list of Scope")
    if len(scopes) > MAX_SCOPES:
        raise InvalidInput(f"a search covers at most {MAX_SCOPES} timelines; narrow it")
    seen: set[str] = set()
    for scope in scopes:
        if not isinstance(scope, Scope) or not isinstance(scope.timeline_id, str):
            raise InvalidInput("scopes must be a list of Scope")
        if scope.timeline_id in seen:
            raise InvalidInput(f"timeline {scope.timeline_id!r} is named twice")
        seen.add(scope.timeline_id)
        for value in (scope.first, scope.last):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidInput("scope bounds must be integers")


async def search_meta(
    backend: Backend, kind: object, query: object, limit: int = 20
) -> list[tuple[str, dict[str, Any]]]:
    """See :meth:`Store.search_meta`."""
    if not isinstance(kind, str) or not kind or ":" in kind:
        raise InvalidInput("kind must be a metadata id kind such as 'user'")
    if not isinstance(query, str):
        raise InvalidInput("a search query must be a string", field="q")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_SEARCH_LIMIT}", field="limit")
    config = backend.search_config
    if config is None or kind not in config.meta or not _storable(query):
        return []
    return await backend.search_meta(kind, query[:200], limit)


def _storable(text: str) -> bool:
    """Whether every backend can take ``text`` as a parameter (no NUL, UTF-8)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text
