"""The terms both backends index, and the PostgreSQL texts built from them."""

from __future__ import annotations

import random

from tidings.timeline.search import (
    MAX_TERMS,
    index_key,
    parse_query,
    terms,
    tsquery,
    tsvector,
)


def test_unspaced_runs_give_bigrams_then_their_last_character() -> None:
    assert terms("梧桐树") == ["梧桐", "桐树", "树"]
    assert terms("Hello, 世界! IM开发") == ["hello", "世界", "界", "im", "开发", "发"]


def test_tsvector_numbers_the_terms_and_tsquery_makes_phrases_and_prefixes() -> None:
    assert tsvector("梧桐树 Go") == "'梧桐':1 '桐树':2 '树':3 'go':4"
    assert tsquery(parse_query("群")) == "('群':*)"
    assert tsquery(parse_query("梧桐树 IM开发")) == "('梧桐' <-> '桐树') & ('im' <-> '开发')"


def test_index_key_is_every_distinct_lexeme_of_the_phrases_or_none_without_a_phrase() -> None:
    assert index_key(parse_query("是是是是 wor")) == "'是是' & 'wor':*"
    assert index_key(parse_query("梧桐树 IM开发")) == "'梧桐' & '桐树' & 'im' & '开发'"
    assert index_key(parse_query("群 hello wor")) is None  # one term a phrase: tsquery itself
    assert index_key([]) is None


def test_terms_hold_letters_and_digits_only_so_quoting_needs_no_escapes() -> None:
    rng = random.Random(7)
    alphabet = "'\\\"%*:;()-^ aZ9_梧桐群あア한\u00c5\u0130𠀀。，"
    for _ in range(500):
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 40)))
        for term in terms(text):
            assert term.isalnum(), (text, term)
        assert "\\" not in tsvector(text)
        assert tsquery(parse_query(text)).count("'") % 2 == 0


def test_a_very_long_text_is_cut_at_max_terms_positions() -> None:
    assert len(terms("中" * (MAX_TERMS + 50))) == MAX_TERMS
    last = tsvector("中" * (MAX_TERMS + 50)).rsplit(" ", 1)[-1]
    assert last == f"'中中':{MAX_TERMS}"
