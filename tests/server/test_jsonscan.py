"""The array scanner the decision-log receiver falls back on: the elements of a well-formed JSON array
with their nesting, and None for anything else (so that the batch is refused whole)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyagent.server.jsonscan import array_items
from tests.helpers.fuzz import FUZZ


def test_elements_and_their_nesting() -> None:
    body = b' [ {"a": "x]\\"}"}, [[1]], 2, "s", true, {"b": [null, -1.5e3]} ] \n'
    assert array_items(body) == [
        (b' {"a": "x]\\"}"}', 1),
        (b" [[1]]", 2),
        (b" 2", 0),
        (b' "s"', 0),
        (b" true", 0),
        (b' {"b": [null, -1.5e3]} ', 2),
    ]
    assert [json.loads(item) for item, _ in array_items(body) or []] == json.loads(body)
    assert array_items(b"[]") == []
    deep = b"[" + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b", 1e400]"
    assert [(len(item), depth) for item, depth in array_items(deep) or []] == [(18001, 3000), (6, 0)]


@pytest.mark.parametrize(
    "body",
    [
        b"", b"1", b'"a"', b"{}", b"[", b"]", b"[1,]", b"[,1]", b"[1 2]", b"[1] x", b"[1][2]", b"\x0c[1]",
        b"[[1}]", b'[{"a" 1}]', b'[{"a":}]', b'[{1: 2}]', b'[{"a": 1,}]', b"[01]", b"[1.]", b"[.5]",
        b"[-]", b"[+1]", b"[NaN]", b"[Infinity]", b"[tru]", b'["\\x"]', b'["\\u12"]', b'["a\x01"]',
        b'["\xff"]', b"[1]]", b"[[1]", b'["a""b"]',
    ],
)  # fmt: skip
def test_anything_but_one_well_formed_array_is_none(body: bytes) -> None:
    assert array_items(body) is None


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(st.lists(_VALUES, max_size=5), st.booleans())
def test_every_array_json_writes_is_split_into_its_elements(value: list[Any], pretty: bool) -> None:
    text = json.dumps(value, indent=2 if pretty else None, ensure_ascii=False).encode()
    items = array_items(text)
    assert items is not None
    assert [json.loads(item) for item, _ in items] == value


@FUZZ
@given(st.lists(_VALUES, min_size=1, max_size=4), st.data())
def test_a_mutated_array_is_taken_only_when_json_takes_it(value: list[Any], data: st.DataObject) -> None:
    """Cut, doubled or changed bytes: the scanner takes what a strict parser takes as an array, and
    nothing else."""
    text = bytearray(json.dumps(value).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text) - 1))
        change = data.draw(st.sampled_from(["cut", "double", "byte"]))
        if change == "cut":
            del text[at]
        elif change == "double":
            text.insert(at, text[at])
        else:
            text[at] = data.draw(st.sampled_from(b'[]{}:,"\\ 0-.eE+tfn\x01\x7f'))
    body = bytes(text)
    assert (array_items(body) is not None) is _a_json_array(body), body


def _a_json_array(body: bytes) -> bool:
    """Whether Python's parser, strict (no NaN or Infinity), reads ``body`` as an array."""

    def refuse(token: str) -> Any:
        raise ValueError(token)

    try:
        return isinstance(json.loads(body, parse_constant=refuse), list)
    except ValueError:
        return False
