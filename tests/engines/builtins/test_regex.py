"""``regex.globs_match`` against the pinned ``opa eval``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.engines.builtins.conftest import BATCHES, NOT_STRINGS
from tests.engines.builtins.differential import Differential

BUILTINS = {"regex.globs_match": 2}

#: Glob pieces: characters, escapes, '.', sets and ranges, flags, and the malformed ones.
_PIECES = st.one_of(
    st.sampled_from(["a", "b", "c", "é", ".", "\\.", "\\*", "[ab]", "[a-c]", "[b-b]", "[]", "[\\]]", "[a-]"]),
    st.sampled_from(
        ["[c-a]", "[", "]", "+", "*", "\\", "-", "a+", "b*", ".*", ".+", "[ab]+", "[bc]*", "\\[", "x"]
    ),
)
GLOBS = st.one_of(st.lists(_PIECES, max_size=6).map("".join), st.sampled_from(NOT_STRINGS))


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Differential:
    return Differential(tmp_path_factory.mktemp("regex"), BUILTINS)


def test_globs_match_edges_match_opa(engines: Differential) -> None:
    cases: list[list[Any]] = [
        ["a.a.[0-9]+z", "a.*z"],
        ["[ab]+c", "[bc]+"],
        ["foo.*", "bar.*"],
        ["", ""],
        ["a**", "a"],
        ["[a-", "a"],
        ["\\", "a"],
        ["é+", "[à-ú]"],
        [1, "a"],
    ]
    results = engines.check("regex.globs_match", cases)
    assert results == {"0": True, "1": True, "2": False, "3": True, "7": True}


@BATCHES
@given(st.lists(st.tuples(GLOBS, GLOBS).map(list), min_size=40, max_size=120))
def test_globs_match_matches_opa(engines: Differential, cases: list[list[Any]]) -> None:
    engines.check("regex.globs_match", cases)
