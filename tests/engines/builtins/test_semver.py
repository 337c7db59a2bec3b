"""``semver.compare`` and ``semver.is_valid`` against the pinned ``opa eval``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.engines.builtins.conftest import BATCHES, NOT_STRINGS, TEXT
from tests.engines.builtins.differential import Differential

BUILTINS = {"semver.compare": 2, "semver.is_valid": 1}

_NUMBER = st.one_of(
    st.sampled_from(["0", "1", "01", "10", "9223372036854775807", "9223372036854775808", "", "+1", "x"]),
    st.integers(0, 30).map(str),
)
_IDENTIFIER = st.one_of(
    st.sampled_from(["alpha", "beta", "rc", "1", "2", "11", "01", "-", "a-b", "ü", "", "9" * 20]),
    st.text(st.sampled_from("0123456789abAZ-"), min_size=1, max_size=3),
)
_DOTTED = st.lists(_IDENTIFIER, min_size=1, max_size=3).map(".".join)
VERSIONS = st.builds(
    lambda v, major, minor, patch, pre, meta: f"{v}{major}.{minor}.{patch}{pre}{meta}",
    st.sampled_from(["", "", "v", "V"]),
    _NUMBER,
    _NUMBER,
    _NUMBER,
    st.one_of(st.just(""), _DOTTED.map(lambda p: "-" + p)),
    st.one_of(st.just(""), _DOTTED.map(lambda m: "+" + m)),
)
OPERANDS = st.one_of(VERSIONS, VERSIONS, TEXT, st.sampled_from(NOT_STRINGS))

EDGES: list[Any] = [
    "1.2.3",
    "v1.2.3",
    "1.2.3-alpha.1",
    "1.2.3-alpha.beta",
    "1.2.3+build.5",
    "1.2.3-",
    "1.2",
    "1.2.3.4",
    "01.02.03",
    "1.2.3-alpha..1",
    "1.2.3\n",
    "",
    "\uff19.1.1",  # a full-width digit nine
    "9223372036854775808.0.0",
]


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Differential:
    return Differential(tmp_path_factory.mktemp("semver"), BUILTINS)


def test_semver_edges_match_opa(engines: Differential) -> None:
    valid = engines.check("semver.is_valid", [[v] for v in [*EDGES, *NOT_STRINGS]])
    assert [valid[str(i)] for i in range(8)] == [True, True, True, True, True, False, False, False]
    pairs = [[a, b] for a in EDGES for b in EDGES[:6]]
    order = engines.check("semver.compare", pairs)
    assert order["2"] == 1  # a release is greater than its pre-releases
    assert order[str(pairs.index(["1.2.3-alpha.1", "1.2.3-alpha.beta"]))] == -1


@BATCHES
@given(st.lists(st.tuples(OPERANDS, OPERANDS).map(list), min_size=30, max_size=100))
def test_semver_compare_matches_opa(engines: Differential, cases: list[list[Any]]) -> None:
    engines.check("semver.compare", cases)


@BATCHES
@given(st.lists(OPERANDS.map(lambda v: [v]), min_size=30, max_size=100))
def test_semver_is_valid_matches_opa(engines: Differential, cases: list[list[Any]]) -> None:
    engines.check("semver.is_valid", cases)
