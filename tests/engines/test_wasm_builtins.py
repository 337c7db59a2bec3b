"""Host built-ins against the real OPA: every case is evaluated three ways (the Python function, the
wasm module calling it, and `opa eval` of the same policy) and the answers must be identical."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyagent.engines.wasm import (
    HOST_BUILTINS,
    BuiltinError,
    BuiltinEvalError,
    MissingBuiltinError,
    UndefinedResultError,
    WasmPolicy,
    read_bundle,
)
from pyagent.engines.wasm.builtins.clock import parse_rfc3339_ns
from tests.helpers.opa_bin import UNDEFINED, build_wasm, opa_eval

TIME_POLICY = """package t

import rego.v1

rfc3339 := {c: ns | some c in input.rfc3339; ns := time.parse_rfc3339_ns(c)}

date := {i: v | some i, c in input.times; v := time.date(c)}

clock := {i: v | some i, c in input.times; v := time.clock(c)}

weekday := {i: v | some i, c in input.times; v := time.weekday(c)}

add_date := {key: v |
	some i, c in input.times
	some j, d in input.deltas
	key := concat(",", [format_int(i, 10), format_int(j, 10)])
	v := time.add_date(c, d[0], d[1], d[2])
}

valid if time.parse_rfc3339_ns(input.at)

now := time.parse_rfc3339_ns(input.at)
"""

VALID_RFC3339 = {
    "2023-03-15T00:00:00Z": 1678838400000000000,
    "2023-03-15T00:00:00.5Z": 1678838400500000000,
    "2023-03-15T00:00:00.000Z": 1678838400000000000,
    "2023-03-15T00:00:00.123456789Z": 1678838400123456789,
    "2023-03-15T00:00:00.1234567899999Z": 1678838400123456789,  # Go truncates past nine digits
    "2023-03-15T00:00:00,25Z": 1678838400250000000,  # Go's parser also takes a comma
    "2023-03-15T01:00:00+01:00": 1678838400000000000,
    "2023-03-14T19:00:00-05:00": 1678838400000000000,
    "2023-03-15T05:30:00+05:30": 1678838400000000000,
    "2023-03-15T00:00:00-00:00": 1678838400000000000,
    "2023-03-15T00:00:00.123456789+01:00": 1678834800123456789,
    "2023-03-15T9:00:00Z": 1678870800000000000,  # one-digit hour: Go's fallback parser accepts it
    "2023-03-16T00:00:00+24:00": 1678838400000000000,  # offsets up to 24:00 ...
    "2023-03-15T01:00:00+00:60": 1678838400000000000,  # ... and minute 60 are accepted by Go
    "2024-02-29T12:00:00Z": 1709208000000000000,
    "2000-02-29T00:00:00Z": 951782400000000000,
    "1970-01-01T00:00:00Z": 0,
    "1969-12-31T23:59:59.999999999Z": -1,
    "2023-12-31T23:59:59Z": 1704067199000000000,
    "1677-09-21T00:12:43.145224192Z": -9223372036854775808,
    "2262-04-11T23:47:16.854775807Z": 9223372036854775807,
}
INVALID_RFC3339 = [
    "2023-02-29T00:00:00Z",  # not a leap year
    "1900-02-29T00:00:00Z",  # century, not a leap year
    "2023-04-31T00:00:00Z",
    "2023-13-01T00:00:00Z",
    "2023-00-10T00:00:00Z",
    "2023-03-00T00:00:00Z",
    "2023-03-15T24:00:00Z",
    "2023-03-15T23:60:00Z",
    "2023-03-15T23:59:60Z",  # no leap seconds
    "2023-03-15t00:00:00Z",
    "2023-03-15T00:00:00z",
    "2023-03-15 00:00:00Z",
    "2023-03-15T00:00:00",
    "2023-03-15T00:00:00+0100",
    "2023-03-15T00:00:00+25:00",
    "2023-03-15T00:00:00+01:61",
    "2023-03-15T00:00:00*01:00",
    "2023-03-15T00:00:00.Z",
    "2023-03-15T00:00:00ZZ",
    "2023-03-15T00:00:00Z ",
    " 2023-03-15T00:00:00Z",
    "2023-03-15",
    "",
    "23-03-15T00:00:00Z",
    "+2023-03-15T00:00:00Z",
    "2023-3-15T00:00:00Z",
    "2023-03-5T00:00:00Z",
    "2023-03-15T00:0:00Z",
    "\uff12023-03-15T00:00:00Z",  # a full-width digit two
    "0001-01-01T00:00:00Z",  # valid date, outside int64 nanoseconds
    "9999-12-31T23:59:59Z",
    "1677-09-21T00:12:43.145224191Z",  # one nanosecond before the smallest int64
    "2262-04-11T23:47:16.854775808Z",  # one nanosecond after the largest
]
NOT_STRINGS = [20230315, None, True, ["2023-03-15T00:00:00Z"]]

TIMES: list[Any] = [
    0,
    -1,
    1678838400000000000,
    1675123200000000000,  # 2023-01-31: month arithmetic normalises
    951782400000000000,
    -2208988800000000001,
    9223372036854775807,
    -9223372036854775808,
    [1678838400123456789],
    [1678838400000000000, "UTC"],
    [1678838400000000000, ""],
    [0, "UTC", "RFC3339"],
    1.5,  # not an integer: OPA's "timestamp too big"
    1e18,
    "1970",
    [],
    True,
    9223372036854775808,
]
DELTAS = [[0, 1, 0], [1, 0, 0], [0, 0, -1], [-1, -13, 400], [0, 0, 0], [0, 1.5, 0], [300, 0, 0]]


@pytest.fixture(scope="module")
def time_policy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WasmPolicy]:
    workdir = tmp_path_factory.mktemp("time")
    rules = ("rfc3339", "date", "clock", "weekday", "add_date", "valid", "now")
    bundle = read_bundle(build_wasm(workdir, TIME_POLICY, *(f"t/{rule}" for rule in rules)))
    return workdir, WasmPolicy(bundle.wasm)


def _python(fn: Any, value: Any) -> Any:
    try:
        return fn(value)
    except BuiltinError:
        return UNDEFINED


def test_host_builtins_are_exactly_these() -> None:
    assert sorted(HOST_BUILTINS) == [
        "regex.globs_match",
        "semver.compare",
        "semver.is_valid",
        "sprintf",
        "strings.any_prefix_match",
        "strings.count",
        "time.add_date",
        "time.clock",
        "time.date",
        "time.format",
        "time.parse_duration_ns",
        "time.parse_ns",
        "time.parse_rfc3339_ns",
        "time.weekday",
        "units.parse",
        "units.parse_bytes",
    ]


def test_every_registered_builtin_resolves_to_its_groups_function() -> None:
    resolved = {name: HOST_BUILTINS[name] for name in HOST_BUILTINS}
    assert all(callable(fn) for fn in resolved.values())
    assert {name: fn.__module__.rsplit(".", 1)[1] for name, fn in resolved.items()} == {
        "regex.globs_match": "globs",
        "semver.compare": "semver",
        "semver.is_valid": "semver",
        "sprintf": "strings",
        "strings.any_prefix_match": "strings",
        "strings.count": "strings",
        "time.add_date": "clock",
        "time.clock": "clock",
        "time.date": "clock",
        "time.format": "clock",
        "time.parse_duration_ns": "durations",
        "time.parse_ns": "clock",
        "time.parse_rfc3339_ns": "clock",
        "time.weekday": "clock",
        "units.parse": "units",
        "units.parse_bytes": "units",
    }


def test_parse_rfc3339_ns_matches_opa(time_policy: tuple[Path, WasmPolicy]) -> None:
    workdir, policy = time_policy
    cases = [*VALID_RFC3339, *INVALID_RFC3339, *NOT_STRINGS]
    input_doc = {"rfc3339": cases}
    expected = opa_eval(workdir, "data.t.rfc3339", input_doc)
    assert expected == VALID_RFC3339  # OPA agrees with the literal table: valid ones exactly, no others
    assert policy.evaluate(input_doc, "t/rfc3339") == expected
    python = {c: _python(parse_rfc3339_ns, c) for c in cases if isinstance(c, str)}
    assert {c: ns for c, ns in python.items() if ns is not UNDEFINED} == expected


def test_parse_rfc3339_ns_errors_make_the_expression_undefined(time_policy: tuple[Path, WasmPolicy]) -> None:
    workdir, policy = time_policy
    for at in ["2023-03-15T00:00:00Z", "2023-02-29T00:00:00Z", 42]:
        expected_valid = opa_eval(workdir, "data.t.valid", {"at": at})
        try:
            valid = policy.evaluate({"at": at}, "t/valid")
        except UndefinedResultError:
            valid = UNDEFINED
        assert valid == expected_valid == (True if at == "2023-03-15T00:00:00Z" else UNDEFINED)
    with pytest.raises(UndefinedResultError):
        policy.evaluate({}, "t/now")


def test_strict_builtin_errors_fail_the_evaluation(time_policy: tuple[Path, WasmPolicy]) -> None:
    workdir, _ = time_policy
    strict = WasmPolicy(read_bundle(workdir / "bundle.tar.gz").wasm, strict_builtin_errors=True)
    with pytest.raises(RuntimeError, match="eval_builtin_error"):
        opa_eval(workdir, "data.t.now", {"at": "yesterday"}, strict_builtin_errors=True)
    with pytest.raises(BuiltinEvalError) as caught:
        strict.evaluate({"at": "yesterday"}, "t/now")
    assert str(caught.value) == (
        'time.parse_rfc3339_ns: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": '
        'cannot parse "yesterday" as "2006"'
    )
    assert caught.value.exit_code == 3
    assert strict.evaluate({"at": "2023-03-15T00:00:00Z"}, "t/now") == 1678838400000000000


@pytest.mark.parametrize("rule", ["date", "clock", "weekday", "add_date"])
def test_calendar_builtins_match_opa(time_policy: tuple[Path, WasmPolicy], rule: str) -> None:
    workdir, policy = time_policy
    input_doc = {"times": TIMES, "deltas": DELTAS}
    expected = opa_eval(workdir, f"data.t.{rule}", input_doc)
    assert policy.evaluate(input_doc, f"t/{rule}") == expected
    assert len(expected) > 0


def test_calendar_builtins_exact_values(time_policy: tuple[Path, WasmPolicy]) -> None:
    _, policy = time_policy
    input_doc = {"times": TIMES, "deltas": DELTAS}
    date: Any = policy.evaluate(input_doc, "t/date")
    clock: Any = policy.evaluate(input_doc, "t/clock")
    weekday: Any = policy.evaluate(input_doc, "t/weekday")
    assert date["2"] == [2023, 3, 15] and date["1"] == [1969, 12, 31]
    assert clock["8"] == [0, 0, 0]
    assert weekday["2"] == "Wednesday"
    add: Any = policy.evaluate(input_doc, "t/add_date")
    assert add["3,0"] == 1677801600000000000  # 2023-01-31 + 1 month = 2023-03-03, as in Go
    assert "3,5" not in add and "3,6" not in add  # a non-integer month; beyond 2262
    assert "12,0" not in add  # 1.5 ns is no timestamp


def test_named_time_zones_fail_loudly_rather_than_differ(tmp_path: Path) -> None:
    rego = "package tz\n\nimport rego.v1\n\nd := time.date([0, input.tz])\n"
    policy = WasmPolicy(read_bundle(build_wasm(tmp_path, rego, "tz/d")).wasm)
    assert opa_eval(tmp_path, "data.tz.d", {"tz": "Pacific/Kiritimati"}) == [1969, 12, 31]  # UTC-10:40 then
    with pytest.raises(
        BuiltinEvalError,
        match=r"^time\.date: unsupported by the embedded engine: time zone 'Pacific/Kiritimati'",
    ):
        policy.evaluate({"tz": "Pacific/Kiritimati"}, "tz/d")
    assert policy.evaluate({"tz": "UTC"}, "tz/d") == opa_eval(tmp_path, "data.tz.d", {"tz": "UTC"})


def test_time_now_ns_is_never_provided(tmp_path: Path) -> None:
    rego = "package clock\n\nimport rego.v1\n\nnow := time.now_ns() + time.parse_duration_ns(input.d)\n"
    with pytest.raises(MissingBuiltinError) as caught:
        WasmPolicy(read_bundle(build_wasm(tmp_path, rego, "clock/now")).wasm)
    assert caught.value.missing == ("time.now_ns",)


def test_extra_host_builtins_get_opa_json_arguments_and_defects_fail_loudly(tmp_path: Path) -> None:
    rego = """package extra

import rego.v1

r := strings.any_prefix_match({s | some s in input.xs}, input.p)
"""
    bundle = read_bundle(build_wasm(tmp_path, rego, "extra/r"))
    seen: list[tuple[Any, Any]] = []

    def any_prefix_match(strings: Any, prefixes: Any) -> bool:
        seen.append((strings, prefixes))
        return any(s.startswith(prefixes) for s in strings)

    policy = WasmPolicy(
        bundle.wasm, host_builtins={**HOST_BUILTINS, "strings.any_prefix_match": any_prefix_match}
    )
    input_doc = {"xs": ["zeta", "alpha", "mid"], "p": "al"}
    assert policy.evaluate(input_doc, "extra/r") is opa_eval(tmp_path, "data.extra.r", input_doc) is True
    assert seen == [(["alpha", "mid", "zeta"], "al")]  # a set arrives as OPA's sorted array

    def broken(strings: Any, prefixes: Any) -> bool:
        raise KeyError("oops")

    policy = WasmPolicy(bundle.wasm, host_builtins={"strings.any_prefix_match": broken})
    with pytest.raises(BuiltinEvalError, match=r"^strings\.any_prefix_match: host built-in failed: KeyError"):
        policy.evaluate(input_doc, "extra/r")
