"""Bad input (issue 2 §3 point 9): a clear error from ``tidings.errors`` and
nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from timeline_harness import StoreFactory

from tidings.errors import InvalidInput, TidingsError, TooLarge
from tidings.timeline import DEFAULT_MAX_MESSAGE_BYTES, Store
from tidings.timeline.store import MAX_CLIENT_ID_CHARS, MAX_TIMELINE_ID_CHARS

NOT_OBJECTS: dict[str, Any] = {
    "list": [1, 2],
    "string": "hello",
    "number": 5,
    "null": None,
    "non-string keys": {1: "one"},
    "a set inside": {"tags": {"a", "b"}},
    "an object inside": {"who": object()},
    "a lone surrogate": {"text": "\ud800"},
}


async def _assert_nothing_written(store: Store, timeline_id: str = "dm:a:b") -> None:
    assert await store.last_seq(timeline_id) == 0
    assert (await store.scan(timeline_id)).entries == ()
    assert (await store.append(timeline_id, {"ok": True})).seq == 1


@pytest.mark.parametrize("case", list(NOT_OBJECTS))
async def test_message_that_is_not_a_json_object(store: Store, case: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        await store.append("dm:a:b", NOT_OBJECTS[case])
    assert raised.value.code == "invalid_input"
    await _assert_nothing_written(store)


async def test_message_over_the_default_limit_is_too_large(store: Store) -> None:
    with pytest.raises(TooLarge) as raised:
        await store.append("dm:a:b", {"text": "x" * DEFAULT_MAX_MESSAGE_BYTES})
    assert raised.value.code == "too_large" and raised.value.status == 413
    assert isinstance(raised.value, InvalidInput)  # callers may catch the parent
    await _assert_nothing_written(store)


async def test_size_limit_is_configurable_and_inclusive(store_factory: StoreFactory) -> None:
    store = await store_factory(max_message_bytes=100)
    fits = {"t": "x" * (100 - len('{"t":""}'))}  # encodes to exactly 100 bytes
    assert (await store.append("dm:a:b", fits)).message == fits
    with pytest.raises(TooLarge) as raised:
        await store.append("dm:a:b", {"t": "x" * (101 - len('{"t":""}'))})
    assert raised.value.details == {"limit": 100}
    assert await store.last_seq("dm:a:b") == 1


async def test_update_that_grows_the_message_over_the_limit(store_factory: StoreFactory) -> None:
    store = await store_factory(max_message_bytes=100)
    await store.append("dm:a:b", {"text": "short"})
    with pytest.raises(TooLarge):
        await store.update("dm:a:b", 1, {"extra": "x" * 100})
    entry = await store.get("dm:a:b", 1)
    assert entry is not None and entry.message == {"text": "short"}


BAD_TIMELINE_IDS: dict[str, Any] = {
    "empty": "",
    "over-long": "t:" + "x" * (MAX_TIMELINE_ID_CHARS - 1),
    "not a string": 42,
    "None": None,
    "bytes": b"dm:a:b",
    "NUL character": "dm:a\x00b",
    "lone surrogate": "dm:\ud800",
}


@pytest.mark.parametrize("case", list(BAD_TIMELINE_IDS))
async def test_bad_timeline_id_in_every_method(store: Store, case: str) -> None:
    bad = BAD_TIMELINE_IDS[case]
    calls = [
        lambda: store.append(bad, {"n": 1}),
        lambda: store.get(bad, 1),
        lambda: store.update(bad, 1, {"n": 2}),
        lambda: store.delete(bad, 1),
        lambda: store.last_seq(bad),
        lambda: store.heads(["dm:a:b", bad]),
        lambda: store.latest(bad),
        lambda: store.scan(bad),
        lambda: store.oldest_seq(bad),
        lambda: store.get_meta(bad),
        lambda: store.put_meta(bad, {"n": 1}),
        lambda: store.update_meta(bad, {"n": 1}),
        lambda: store.delete_meta(bad),
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            await call()
    assert await store.find_meta() == []


async def test_longest_timeline_id_is_accepted(store: Store) -> None:
    longest = "t:" + "x" * (MAX_TIMELINE_ID_CHARS - 2)
    assert (await store.append(longest, {"n": 1})).seq == 1
    assert (await store.scan(longest)).entries[0].timeline_id == longest


BAD_SEQS: dict[str, Any] = {
    "string": "1",
    "float": 1.0,
    "bool": True,
    "None": None,
    "zero": 0,
    "negative": -1,
    "beyond 64 bits": 2**63,
}


@pytest.mark.parametrize("case", list(BAD_SEQS))
async def test_bad_seq_in_get_update_delete(store: Store, case: str) -> None:
    await store.append("dm:a:b", {"n": 1})
    bad = BAD_SEQS[case]
    for call in (
        lambda: store.get("dm:a:b", bad),
        lambda: store.update("dm:a:b", bad, {"n": 2}),
        lambda: store.delete("dm:a:b", bad),
    ):
        with pytest.raises(InvalidInput):
            await call()
    entry = await store.get("dm:a:b", 1)
    assert entry is not None and entry.message == {"n": 1}


@pytest.mark.parametrize("bad", ["", "x" * (MAX_CLIENT_ID_CHARS + 1), 7, "a\x00b"])
async def test_bad_client_id(store: Store, bad: Any) -> None:
    with pytest.raises(InvalidInput):
        await store.append("dm:a:b", {"n": 1}, client_id=bad)
    await _assert_nothing_written(store)


@pytest.mark.parametrize("fields", [[("a", 1)], "text", None])
async def test_update_fields_must_be_an_object(store: Store, fields: Any) -> None:
    await store.append("dm:a:b", {"n": 1})
    with pytest.raises(InvalidInput):
        await store.update("dm:a:b", 1, fields)


@pytest.mark.parametrize("fields", [[("a", 1)], "text", {"when": {1, 2}}])
async def test_metadata_must_be_a_json_object(store: Store, fields: Any) -> None:
    for call in (
        lambda: store.put_meta("group:g", fields),
        lambda: store.update_meta("group:g", fields),
    ):
        with pytest.raises(InvalidInput):
            await call()
    assert await store.get_meta("group:g") is None


async def test_errors_are_client_facing_with_a_code(store: Store) -> None:
    with pytest.raises(TidingsError) as raised:
        await store.append("", {"n": 1})
    assert raised.value.to_dict()["code"] == "invalid_input"
    assert raised.value.message  # a sentence a person can act on
