"""The array scanner the decision-log receiver falls back on: the elements of a well-formed JSON array
with their nesting, and None for anything else (so that the batch is refused whole)."""

from __future__ import annotations

import json

import pytest

from pyagent.server.jsonscan import array_items


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
