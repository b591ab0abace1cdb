"""Search, the backend-neutral part: what is indexed, how text becomes terms,
how a query becomes an index query, and snippets.

Both backends index the same *terms*, computed here, so they find the same
entries:

- Text is folded (lower case, one character for one character) and split into
  runs. A run of characters written without spaces (Han, kana, Hangul…) yields
  its overlapping bigrams followed by its last character alone: "梧桐树" gives
  ``梧桐 桐树 树``. Every character of the run thus *starts* a term, so a
  one-character query is a prefix query (``群*``) and a longer one a phrase of
  bigrams. A run of other letters and digits is one word term ("Timeline" gives
  ``timeline``). Everything else separates terms.
- A query is split on white space into parts, all of which must match. A part
  is turned into terms the same way and matched as a *phrase* (consecutive
  terms), so "IM开发" finds "用IM开发" and "Timeline模型" finds
  "Timeline模型"; a part's last word or lone character matches as a prefix
  ("time" finds "timeline"). A CJK run at the end of a part drops its trailing
  single character (the text's run may go on: "梧桐" must find "梧桐树").

Query text never reaches an index's query language or SQL as such: a query is
reduced to terms made of letters and digits only, and each backend quotes them
(:func:`fts5_query`, :func:`tsquery`) and passes the result as a bound
parameter.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import InvalidInput

# Longer queries are cut: a query is a few words; 200 characters is a long
# sentence and bounds the index work of one search.
MAX_QUERY_CHARS = 200
# A term longer than this is cut (a "word" of 5,000 letters): PostgreSQL caps a
# lexeme at 2 KiB and nobody types a 64-letter word in a search box.
MAX_TERM_CHARS = 64
# Terms past this many in one document are not indexed: PostgreSQL positions
# stop at 16,383; IM texts (4,000 characters) stay well below.
MAX_TERMS = 16_000
# A search reads one index range per readable timeline; a user with more
# conversations than this must narrow the search to some of them.
MAX_SCOPES = 5_000
# Relevance ranks the newest matches of this many; a bound keeps a query for a
# common character as fast as a newest-first one.
RELEVANCE_POOL = 200
# Characters of context on each side of the first match in a snippet.
SNIPPET_CONTEXT = 40
MAX_SEARCH_LIMIT = 100


def fold(text: str) -> str:
    """Lower case, keeping one character per character (offsets stay valid)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)


# Scripts written without spaces between words: CJK radicals, kana, bopomofo,
# Han (with extension A), Hangul syllables, CJK compatibility ideographs,
# half-width katakana, Han extensions B and later. Only their letters count
# (CJK punctuation such as "。" separates like any punctuation).
_UNSPACED = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003ffff"
# A letter or digit ([^\W_]) of an unspaced script, or of any other script.
_RUNS = re.compile(f"((?:(?![\\W_])[{_UNSPACED}])+)|((?:(?![\\W_])[^{_UNSPACED}])+)")


def is_unspaced(ch: str) -> bool:
    """Whether ``ch`` is a letter of a script written without spaces."""
    found = _RUNS.fullmatch(ch)
    return found is not None and found.group(1) is not None


def _is_word(ch: str) -> bool:
    return ch.isalnum()


def runs(text: str) -> list[tuple[str, bool]]:
    """The folded runs of letters and digits of ``text``: (run, unspaced), in order."""
    return [(unspaced or word, bool(unspaced)) for unspaced, word in _RUNS.findall(fold(text))]


def _cut(term: str) -> str:
    return term[:MAX_TERM_CHARS]


def terms(text: str) -> list[str]:
    """The index terms of ``text``, in order (see the module docstring)."""
    out: list[str] = []
    for unspaced, word in _RUNS.findall(fold(text)):
        if unspaced:  # its bigrams, the last slice being the lone last character
            out += [unspaced[i : i + 2] for i in range(len(unspaced))]
        else:
            out.append(word[:MAX_TERM_CHARS])
    return out[:MAX_TERMS]


@dataclass(frozen=True, slots=True)
class Phrase:
    """Terms that must appear consecutively; the last one may be a prefix."""

    terms: tuple[str, ...]
    prefix: bool


def phrase(part: str) -> Phrase | None:
    """The phrase a whitespace-free query part matches, or None (no letters)."""
    found = runs(part)
    out: list[str] = []
    for index, (run, unspaced) in enumerate(found):
        last = index == len(found) - 1
        if not unspaced:
            out.append(_cut(run))
        elif len(run) == 1:
            out.append(run)
        else:
            out += [run[i : i + 2] for i in range(len(run) - 1)]
            if not last:
                out.append(run[-1])
    if not out:
        return None
    last_run, last_unspaced = found[-1]
    # A lone last character or a last word may continue in the text.
    prefix = not last_unspaced or len(last_run) == 1
    return Phrase(tuple(out), prefix)


def term_needle(p: Phrase) -> str:
    """What ``" " + " ".join(terms(text)) + " "`` contains exactly when ``text``
    matches ``p``: its terms consecutively, the last one whole or, for a prefix,
    starting a term. The same match as the index's phrase match."""
    return " " + " ".join(p.terms) + ("" if p.prefix else " ")


def parse_query(query: object) -> list[Phrase]:
    """The phrases of a query, all of which must match; [] matches nothing.

    Raises:
        InvalidInput: the query is not a string.
    """
    if not isinstance(query, str):
        raise InvalidInput("a search query must be a string", field="q")
    phrases = []
    for part in query[:MAX_QUERY_CHARS].split():
        found = phrase(part)
        if found is not None and found not in phrases:
            phrases.append(found)
    return phrases


def fts5_query(phrases: Sequence[Phrase]) -> str:
    """An FTS5 MATCH expression: quoted phrases joined by AND."""
    quoted = []
    for p in phrases:
        text = " ".join(p.terms).replace('"', '""')
        quoted.append(f'"{text}"' + (" *" if p.prefix else ""))
    return " AND ".join(quoted)


def tsquery(phrases: Sequence[Phrase]) -> str:
    """A PostgreSQL ``tsquery`` text: quoted lexemes, ``<->`` within a phrase,
    ``:*`` on a last term that is a prefix (as ``群:*``, a lone character)."""
    return " & ".join("(" + " <-> ".join(_lexemes(p)) + ")" for p in phrases)


def index_key(phrases: Sequence[Phrase]) -> str | None:
    """The distinct lexemes of :func:`tsquery` ``phrases`` joined by ``&`` (what
    a document must hold to match them), or None when that is the same query
    (no phrase of several terms)."""
    if all(len(p.terms) == 1 for p in phrases):
        return None
    return " & ".join(dict.fromkeys(lexeme for p in phrases for lexeme in _lexemes(p)))


def _lexemes(p: Phrase) -> list[str]:
    lexemes = [f"'{term}'" for term in p.terms]  # letters and digits: no escaping
    if p.prefix:
        lexemes[-1] += ":*"
    return lexemes


def tsvector(text: str) -> str:
    """A PostgreSQL ``tsvector`` text of the terms of ``text`` at positions 1,
    2, 3… (terms are letters and digits only, so none needs escaping)."""
    return " ".join([f"'{term}':{position}" for position, term in enumerate(terms(text), 1)])


# -- what is indexed ----------------------------------------------------------------


@dataclass(frozen=True)
class SearchConfig:
    """What a store indexes for :meth:`Store.search` and :meth:`Store.search_meta`.

    Args:
        kinds: timeline kinds whose entries are indexed (none by default).
        fields: the message fields whose text is indexed (string values only).
        when: index only messages whose field equals one of the listed values,
            e.g. ``{"kind": ("text", "data")}``.
        facet: a message field stored beside the text, to filter searches by
            (a sender, say).
        meta: metadata id kinds (``user`` for ``user:alice``) to index for
            :meth:`Store.search_meta`, with the record fields to index; the id's
            part after the kind is always indexed.
    """

    kinds: tuple[str, ...] = ()
    fields: tuple[str, ...] = ("text",)
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    facet: str | None = None
    meta: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def indexes(self, timeline_id: str) -> bool:
        kind, colon, _ = timeline_id.partition(":")
        return bool(colon) and kind in self.kinds

    def document(self, message: Mapping[str, Any]) -> str | None:
        """The text to index of a message, or None when it is not indexed."""
        for key, allowed in self.when.items():
            if message.get(key) not in allowed:
                return None
        texts = [message[f] for f in self.fields if isinstance(message.get(f), str)]
        text = "\n".join(t for t in texts if t)
        return text or None

    def facet_of(self, message: Mapping[str, Any]) -> str | None:
        value = None if self.facet is None else message.get(self.facet)
        return value if isinstance(value, str) else None

    def meta_document(self, record_id: str, fields: Mapping[str, Any]) -> str | None:
        """The folded searchable text of a metadata record, or None."""
        kind, colon, rest = record_id.partition(":")
        names = self.meta.get(kind)
        if names is None or not colon:
            return None
        values = [rest] + [fields[n] for n in names if isinstance(fields.get(n), str)]
        return "\n".join(normalise(v) for v in values if v)


def normalise(text: str) -> str:
    """Folded text with runs of white space as one space (metadata matching)."""
    return " ".join(fold(text).split())


def like_pattern(text: str) -> str:
    """A LIKE pattern for "contains ``text``", escaped with backslash."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# -- what a search returns ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """A timeline to search, and the seqs of it that may be returned:
    ``first <= seq <= last`` (None: no upper bound)."""

    timeline_id: str
    first: int = 1
    last: int | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """One matching entry. ``snippet`` is the text around the first match as
    (text, matched) pieces, in order."""

    timeline_id: str
    seq: int
    created_at: float
    facet: str | None
    snippet: tuple[tuple[str, bool], ...]


@dataclass(frozen=True, slots=True)
class SearchPage:
    """Hits in order, and the cursor of the next page (None: no more)."""

    hits: tuple[Hit, ...]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A match as a backend reads it, before the snippet is cut."""

    timeline_id: str
    seq: int
    created_at: float
    facet: str | None
    text: str

    def key(self) -> tuple[float, str, int]:
        """Newest-first order is descending order of this key."""
        return (self.created_at, self.timeline_id, self.seq)


def encode_cursor(value: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(value))).decode().rstrip("=")


def decode_cursor(cursor: str, shape: tuple[type, ...]) -> list[Any]:
    """The values of a cursor made by :func:`encode_cursor`, checked against ``shape``.

    Raises:
        InvalidInput: not a cursor of this shape.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidInput("the cursor is not valid", field="cursor") from None
    if (
        not isinstance(value, list)
        or len(value) != len(shape)
        or not all(
            isinstance(v, t) and not isinstance(v, bool) for v, t in zip(value, shape, strict=True)
        )
    ):
        raise InvalidInput("the cursor is not valid", field="cursor")
    return value


def snippet(text: str, phrases: Sequence[Phrase]) -> tuple[tuple[str, bool], ...]:
    """The text around the first match, with every match in it marked."""
    folded = fold(text)
    spans = sorted(_spans(folded, phrases))
    if not spans:
        head = text[: 2 * SNIPPET_CONTEXT]
        return ((head + ("…" if len(text) > len(head) else ""), False),)
    start = max(0, spans[0][0] - SNIPPET_CONTEXT)
    stop = min(len(text), spans[0][1] + 2 * SNIPPET_CONTEXT)
    pieces: list[tuple[str, bool]] = []
    if start > 0:
        pieces.append(("…", False))
    position = start
    for low, high in spans:
        if low < position or low >= stop:
            continue
        high = min(high, stop)
        if low > position:
            pieces.append((text[position:low], False))
        pieces.append((text[low:high], True))
        position = high
    if position < stop:
        pieces.append((text[position:stop], False))
    if stop < len(text):
        pieces.append(("…", False))
    return tuple(pieces)


def _spans(folded: str, phrases: Sequence[Phrase]) -> list[tuple[int, int]]:
    """Where the literal text of each phrase occurs (terms rejoined)."""
    spans = []
    for p in phrases:
        found = _find(folded, literal(p), p.prefix)
        if not found:  # matched across a separator ("IM 开发" for "IM开发"): mark terms
            for index, term in enumerate(p.terms):
                found += _find(folded, term, p.prefix and index == len(p.terms) - 1)
        spans += found
    return spans


def _find(folded: str, needle: str, prefix: bool) -> list[tuple[int, int]]:
    spans = []
    start = folded.find(needle) if needle else -1
    while start >= 0:
        end = start + len(needle)
        if prefix:  # mark the rest of the word the prefix matched
            while end < len(folded) and _is_word(folded[end]) and not is_unspaced(folded[end]):
                end += 1
        spans.append((start, end))
        start = folded.find(needle, end)
    return spans


def literal(p: Phrase) -> str:
    """The text a phrase stands for: bigrams overlap, words are as typed."""
    out = ""
    for term in p.terms:
        if out and is_unspaced(term[0]) and is_unspaced(out[-1]) and len(term) == 2:
            out += term[1]
        elif out and is_unspaced(term[0]) and out[-1] == term[0] and len(term) == 1:
            continue  # a run's trailing character repeats the last bigram's
        else:
            out += term
    return out
