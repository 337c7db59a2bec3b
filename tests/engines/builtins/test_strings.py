"""``sprintf``, ``strings.any_prefix_match`` and ``strings.count`` against the pinned ``opa eval``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyagent.engines.wasm import BuiltinEvalError
from tests.engines.builtins.conftest import BATCHES, JSON_SCALARS, NOT_STRINGS, SHORT_ASCII, TEXT
from tests.engines.builtins.differential import Differential

BUILTINS = {"sprintf": 2, "strings.any_prefix_match": 2, "strings.count": 2}

#: Format pieces: literal text, the supported verbs with a width or '-', and Go's error paths
#: (bad verbs for every operand type, a lone '%' at the end, more or fewer operands than verbs).
FORMAT_PIECES = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="%"), max_size=4),
    st.sampled_from(["%v", "%s", "%d", "%%", "%-4v", "%3s", "%5d", "%-2d", "%t", "%z", "%é", "%!", "%1%"]),
)
FORMATS = st.lists(FORMAT_PIECES, max_size=5).map("".join)
SPRINTF_VALUES = st.lists(
    st.one_of(
        JSON_SCALARS,
        st.lists(st.integers(-3, 3), max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "é"]), st.integers(0, 9), max_size=2),
        st.sampled_from([0.5, 1e-7, 1e21, 123456.0, 1234567.0, -0.0, 2.5e-5, 10**19, -(10**40)]),
    ),
    max_size=4,
)
PREFIX_OPERAND = st.one_of(SHORT_ASCII, st.lists(SHORT_ASCII, max_size=4), st.sampled_from(NOT_STRINGS))


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Differential:
    return Differential(tmp_path_factory.mktemp("strings"), BUILTINS)


EDGE_SPRINTF: list[list[Any]] = [
    ["", []],
    ["%d", [7]],
    ["%d", [10**30]],
    ["%v|%s|%d", [10**30, 10**30, -(10**30)]],
    ["%v %v %v %v", [1.0, 1e6, 1e-5, 0.0001]],
    ["%v", [[1, "a", None, True, {"k": [2]}]]],
    ["%s", ["ünïcødé 🚀"]],
    ["%6s|%-6s|", ["🚀", "é"]],
    ["%v%v", ["only one"]],
    ["no verbs", [1, "x", 2.5]],
    ["100%", []],
    ["%", ["x"]],
    ["%d", "not an array"],
    [42, []],
    ["%v", None],
]


def test_sprintf_edges_match_opa(engines: Differential) -> None:
    results = engines.check("sprintf", EDGE_SPRINTF)
    assert results["1"] == "7"
    assert results["2"] == "1000000000000000000000000000000"
    assert results["4"] == "1 1e+06 1e-05 0.0001"
    assert results["8"] == "only one%!v(MISSING)"
    assert results["9"] == "no verbs%!(EXTRA int64=1, string=x, float64=2.5)"
    assert sorted(results, key=int) == [str(i) for i in range(12)]  # the last three are built-in errors


@BATCHES
@given(st.lists(st.tuples(FORMATS, SPRINTF_VALUES).map(list), min_size=20, max_size=60))
def test_sprintf_matches_opa(engines: Differential, cases: list[list[Any]]) -> None:
    engines.check("sprintf", cases)


#: Formats beyond the supported subset, each with an operand it would format.
UNSUPPORTED: dict[str, Any] = {"%q": "x", "%05d": 1, "%+d": 1, "%#v": 1, "% d": 1, "%*d": 1, "%[1]d": 1}
UNSUPPORTED |= {"%.2d": 1.5, "%x": 1.5, "%g": 1.5, "%.2v": 1.5, "%.3s": "abcd", "%.4d": 10**20}


@pytest.mark.parametrize(("fmt", "value"), list(UNSUPPORTED.items()))
def test_sprintf_beyond_the_supported_subset_fails_loudly(
    engines: Differential, fmt: str, value: Any
) -> None:
    with pytest.raises(BuiltinEvalError, match=r"^sprintf: unsupported by the embedded engine: sprintf "):
        engines.lenient.evaluate({"args": [fmt, [value]]}, "d/one_0")


NUMBER_VERBS = st.sampled_from(["%f", "%.2f", "%e", "%8.3E", "%.f", "%-9.1f", "%F", "%.0e"])
DIGITS_VERBS = st.sampled_from(["%.3d", "%.0d", "%5.2d", "%-6.3d"])
HEX_VERBS = st.sampled_from(["%x", "%X", "%6x", "%-4X"])
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.5, 2.675, 1e-7, 1e21, -0.0, 123456.5, 1.005]),
    st.integers(-(10**6), 10**6),
    st.sampled_from(["abc", "", "é🚀x"]),
)


@BATCHES
@given(
    st.lists(
        st.one_of(
            st.tuples(NUMBER_VERBS, st.tuples(NUMBERS).map(list)),
            st.tuples(DIGITS_VERBS, st.tuples(st.one_of(st.integers(-(10**6), 10**6), TEXT)).map(list)),
            st.tuples(HEX_VERBS, st.tuples(st.one_of(TEXT, st.integers(-(10**30), 10**30))).map(list)),
        ).map(list),
        min_size=20,
        max_size=60,
    )
)
def test_sprintf_number_and_hex_verbs_match_opa(engines: Differential, cases: list[list[Any]]) -> None:
    engines.check("sprintf", cases)


def test_any_prefix_match_edges_match_opa(engines: Differential) -> None:
    cases: list[list[Any]] = [
        ["com.vendor.app", "com.vendor."],
        [["org.x", "com.vendor.app"], ["net.", "com.vendor."]],
        ["com.vendor", ["com.vendor.app"]],
        ["", ""],
        ["abc", []],
        [[], "a"],
        ["ünï", "ü"],
        [["a", 1], "a"],
        ["a", ["a", None]],
        [None, "a"],
        ["a", {"a": 1}],
    ]
    results = engines.check("strings.any_prefix_match", cases)
    assert [results.get(str(i)) for i in range(len(cases))] == [
        True, True, False, True, False, False, True, None, None, None, None,
    ]  # fmt: skip


@BATCHES
@given(st.lists(st.tuples(PREFIX_OPERAND, PREFIX_OPERAND).map(list), min_size=20, max_size=80))
def test_any_prefix_match_matches_opa(engines: Differential, cases: list[list[Any]]) -> None:
    engines.check("strings.any_prefix_match", cases)


@BATCHES
@given(
    st.lists(
        st.tuples(
            st.one_of(TEXT, SHORT_ASCII, st.sampled_from(NOT_STRINGS)),
            st.one_of(TEXT, SHORT_ASCII, st.sampled_from(["", "a", "🚀", *NOT_STRINGS[:3]])),
        ).map(list),
        min_size=20,
        max_size=80,
    )
)
def test_count_matches_opa(engines: Differential, cases: list[list[Any]]) -> None:
    engines.check("strings.count", cases)


def test_count_edges(engines: Differential) -> None:
    cases: list[list[Any]] = [["aaaa", "aa"], ["héllo", ""], ["", ""], ["🚀🚀", "🚀"], ["x", 1]]
    results = engines.check("strings.count", cases)
    assert results == {"0": 2, "1": 6, "2": 1, "3": 2}
