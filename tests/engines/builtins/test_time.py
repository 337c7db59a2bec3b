"""``time.format`` and ``time.parse_duration_ns`` against the pinned ``opa eval``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyagent.engines.wasm import BuiltinEvalError
from pyagent.engines.wasm.builtins.clock import format_time
from tests.engines.builtins.conftest import BATCHES, NOT_STRINGS, TEXT
from tests.engines.builtins.differential import Differential

BUILTINS = {"time.format": 1, "time.parse_duration_ns": 1, "time.parse_ns": 2}

INT64 = st.integers(-(2**63), 2**63 - 1)
_LAYOUT_PIECES = st.one_of(
    st.sampled_from(["2006", "06", "01", "1", "Jan", "January", "02", "2", "_2", "__2", "002", "15", "03"]),
    st.sampled_from(
        ["3", "04", "4", "05", "5", "PM", "pm", "Mon", "Monday", "MST", "Z07:00", "-0700", "-07"]
    ),
    st.sampled_from(["Z0700", "Z07", "-07:00:00", ".000", ".999999999", ",000000", ".0000000000", ".9"]),
    st.sampled_from(["_2006", "Janx", "Monx", "T", " ", "-", ":"]),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=2),
)
LAYOUTS = st.one_of(
    st.lists(_LAYOUT_PIECES, max_size=6).map("".join),
    st.sampled_from(["", "RFC822", "RFC3339", "RFC3339Nano", "ANSIC", "Kitchen", "RubyDate", "RFC1123Z"]),
)
TIMES = st.one_of(
    INT64,
    st.tuples(INT64).map(list),
    st.tuples(INT64, st.sampled_from(["UTC", ""])).map(list),
    st.tuples(INT64, st.sampled_from(["UTC", ""]), LAYOUTS).map(list),
    st.sampled_from([1.5, 2**63, -(2**63) - 1, "0", [], ["0"], [0, 5], [0, "UTC", 5], None]),
)

_DURATION_PIECES = st.one_of(
    st.sampled_from(["-", "+", ".", "0", "1", "15", "1.5", ".5", "1.", "9223372036854775807", "0.000000001"]),
    st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False).map(str),
    st.sampled_from(["ns", "us", "µs", "μs", "ms", "s", "m", "h", "d", "w", "y", "D", "x", "mo", "hd", " "]),
    st.integers(0, 10**6).map(str),
)
DURATIONS = st.one_of(st.lists(_DURATION_PIECES, max_size=6).map("".join), TEXT, st.sampled_from(NOT_STRINGS))


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Differential:
    return Differential(tmp_path_factory.mktemp("time"), BUILTINS)


def test_time_format_edges_match_opa(engines: Differential) -> None:
    cases: list[list[Any]] = [
        [1500000000123456789],
        [[0, "UTC", "RFC822"]],
        [[1500000000000000000, "", "Monday _2 January 2006 3:04:05.000 PM MST -07:00"]],
        [[-(2**63), "UTC", "2006-01-02T15:04:05.999999999Z07:00"]],
        [[2**63 - 1, "UTC", "002 __2 .0000000000000"]],
        [[0, "UTC", "Kitchen"]],  # not a layout name OPA knows: plain text
        [1.5],
        [[0, 1]],
    ]
    results = engines.check("time.format", cases)
    assert results == {
        "0": "2017-07-14T02:40:00.123456789Z",
        "1": "01 Jan 70 00:00 UTC",
        "2": "Friday 14 July 2017 2:40:00.000 AM UTC +00:00",
        "3": "1677-09-21T00:12:43.145224192Z",
        "4": "101 101 .854775807",
        "5": "Kitchen",
    }


@BATCHES
@given(st.lists(TIMES.map(lambda t: [t]), min_size=30, max_size=100))
def test_time_format_matches_opa(engines: Differential, cases: list[list[Any]]) -> None:
    engines.check("time.format", cases)


def test_time_format_in_a_named_zone_fails_loudly(engines: Differential) -> None:
    with pytest.raises(
        BuiltinEvalError, match=r"^time\.format: unsupported by the embedded engine: time zone"
    ):
        engines.lenient.evaluate({"args": [[0, "Europe/Paris", "15:04"]]}, "d/one_0")


def test_parse_duration_edges_match_opa(engines: Differential) -> None:
    cases = [
        ["1h30m"], ["1.5d"], ["2w"], ["1y"], ["-1d"], ["1ns1d"], ["0.000000000001d"], ["106751d"],
        ["106752d"], ["1µs"], ["1μs"], ["0"], [""], ["1hd"], ["1mo"], ["1..5h"], ["9223372036854775808ns"],
        ["1.515w"], ["292.47y"], ["106751.99116730063d"],  # float64 hours: 254.51999999999998h...
    ]  # fmt: skip
    results = engines.check("time.parse_duration_ns", cases)
    assert results == {
        "0": 5400000000000,
        "1": 129600000000000,
        "2": 1209600000000000,
        "3": 31536000000000000,
        "4": -86400000000000,
        "5": 86400000000001,
        "6": 86,
        "7": 9223286400000000000,
        "9": 1000,
        "10": 1000,
        "11": 0,
        "17": 916271999999999,
        "18": 9223333920000000000,
        "19": 9223372036854774000,
    }


@BATCHES
@given(st.lists(DURATIONS.map(lambda d: [d]), min_size=30, max_size=100))
def test_parse_duration_matches_opa(engines: Differential, cases: list[list[Any]]) -> None:
    engines.check("time.parse_duration_ns", cases)


def _mangled(draw: st.DrawFn) -> list[Any]:
    """A layout without zone names, and a value: the time laid out with it, maybe cut or with a
    character dropped or changed, or any text."""
    layout = draw(LAYOUTS.filter(lambda layout: "MST" not in layout and layout not in ("RFC822", "RubyDate")))
    value = format_time([draw(st.integers(-(2**62), 2**62)), "UTC", layout])
    cut = draw(st.integers(0, len(value)))
    value = draw(
        st.sampled_from(
            [
                value,
                value[:cut],
                value[:cut] + value[cut + 1 :],
                value[:cut] + draw(st.sampled_from("0 9+-.,aZ")) + value[cut:],
            ]
        )
    )
    return [layout, draw(st.one_of(st.just(value), TEXT))]


PARSE_CASES = st.composite(_mangled)()


def test_parse_ns_edges_match_opa(engines: Differential) -> None:
    cases: list[list[Any]] = [
        ["2006-01-02", "2017-07-14"],
        ["Jan _2 15:04:05 2006", "jul 14 02:40:00 2017"],
        ["3:04PM 2006", "2:40PM 2017"],
        ["2006-01-02T15:04:05Z07:00", "2017-07-14T02:40:00+02:00"],
        ["02 Jan 06 15:04 MST -0700", "14 Jul 17 02:40 UTC +0100"],  # "UTC" wins over the offset
        ["2006 002", "2024 060"],
        ["2006-01-02 15:04:05", "2017-07-14 02:40:00.123456789"],  # a fraction the layout lacks
        ["2006", "0001"],  # outside int64 nanoseconds
        ["2006-01-02", "2017-02-29"],
        ["", ""],
        [1, "x"],
    ]
    results = engines.check("time.parse_ns", cases)
    assert results == {
        "0": 1499990400000000000,
        "1": 1500000000000000000,
        "2": 1483281600000000000,  # 2017-01-01 14:40 UTC
        "3": 1499992800000000000,
        "4": 1500000000000000000,
        "5": 1709164800000000000,
        "6": 1500000000123456789,
    }


@BATCHES
@given(st.lists(PARSE_CASES, min_size=30, max_size=100))
def test_parse_ns_matches_opa(engines: Differential, cases: list[list[Any]]) -> None:
    engines.check("time.parse_ns", cases)


def test_parse_ns_with_a_zone_abbreviation_fails_loudly(engines: Differential) -> None:
    with pytest.raises(
        BuiltinEvalError, match=r"^time\.parse_ns: unsupported by the embedded engine: a zone"
    ):
        engines.lenient.evaluate({"args": ["15:04 MST", "02:40 CET"]}, "d/one_2")
