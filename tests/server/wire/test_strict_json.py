"""The nesting bound of client JSON, checked before parsing: vectors, and a cross-check
against the standard library's parser on generated documents."""

from __future__ import annotations

import json

import hypothesis
import hypothesis.strategies as st
import pytest

from server.wire.errors import ProtocolError
from server.wire.strict_json import (
    MAX_DEPTH,
    TooDeep,
    depth_of,
    loads_object,
    loads_strict,
    nests_deeper_than,
)


@pytest.mark.parametrize(
    "text, depth",
    [
        ("1", 0),
        ('"[[[[{{{"', 0),  # brackets inside a string do not count
        ('"\\"[[["', 0),  # nor after an escaped quote
        ('["\\\\", [[]]]', 3),  # an escaped backslash ends its escape
        ("[]", 1),
        ('{"a": [{"b": []}]}', 4),
        ("[[], [[]], []]", 3),
    ],
)
def test_depth_vectors(text: str, depth: int) -> None:
    for value in (text, text.encode()):
        assert not nests_deeper_than(value, depth)
        assert nests_deeper_than(value, depth - 1) == (depth > 0)
    assert depth_of(json.loads(text)) == depth


def test_a_deep_document_is_refused_before_it_is_parsed() -> None:
    deep = "[" * 100_000 + "]" * 100_000  # the standard parser would hit RecursionError
    with pytest.raises(TooDeep):
        loads_strict(deep)
    assert loads_strict("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


def test_trailing_data_and_unterminated_strings_do_not_fool_the_scan() -> None:
    assert nests_deeper_than('"unterminated [[[[', 0) is False  # the parser refuses it
    assert nests_deeper_than("[[[]]] [[[[", 3)  # what follows counts too
    with pytest.raises(ValueError):
        loads_strict('"unterminated')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


@hypothesis.given(json_values)
def test_the_scan_agrees_with_the_parser(value: object) -> None:
    text = json.dumps(value)
    depth = depth_of(value)
    assert not nests_deeper_than(text, depth)
    if depth:
        assert nests_deeper_than(text, depth - 1)
    assert loads_strict(text) == value


@pytest.mark.parametrize(
    "text, code, message",
    [
        ('{"a": 1}', None, None),
        (b'{"a": 1}', None, None),
        ('{"a": 1} x', "invalid_json", "the body is not valid JSON (RFC 8259, UTF-8)"),
        ('{"a": NaN}', "invalid_json", "the body is not valid JSON (RFC 8259, UTF-8)"),
        ('"\\ud800"', "invalid_json", "the body is not valid JSON (RFC 8259, UTF-8)"),
        ("[1, 2]", "not_an_object", "the body must be a JSON object"),
        ("null", "not_an_object", "the body must be a JSON object"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "invalid_json",
         f"the body nests deeper than {MAX_DEPTH} levels of objects and arrays"),
    ],
)  # fmt: skip
def test_loads_object(text: str | bytes, code: str | None, message: str | None) -> None:
    if code is None:
        assert loads_object(text, "the body", "not_an_object") == {"a": 1}
        return
    with pytest.raises(ProtocolError) as info:
        loads_object(text, "the body", "not_an_object")
    assert (info.value.code, info.value.message, info.value.status) == (code, message, 400)


def test_loads_object_byte_by_byte_prefixes_are_refused() -> None:
    whole = b'{"messages": [{"role": "user", "content": "hi \\u00e9"}], "n": [1, 2.5e3]}'
    assert loads_object(whole, "x")["n"] == [1, 2500.0]
    for end in range(len(whole)):
        with pytest.raises(ProtocolError):
            loads_object(whole[:end], "x")
