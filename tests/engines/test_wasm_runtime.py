"""The wasm runtime against the real OPA: policies compiled by `opa build -t wasm`, answers compared
with `opa eval` of the same policy, input and data (reading the bundles: ``test_wasm_bundle_reading.py``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from pyagent.engines.wasm import (
    BuiltinEvalError,
    MissingBuiltinError,
    PolicyAbortError,
    UndefinedResultError,
    UnknownEntrypointError,
    WasmPolicy,
    WasmRuntimeError,
    read_bundle,
)
from pyagent.engines.wasm.errors import trap_text
from pyagent.errors import InvalidInputError, NoDecisionError
from tests.helpers.opa_bin import UNDEFINED, build_wasm, opa_binary, opa_eval

POLICY = """package demo

import rego.v1

banned contains app.id if {
	some app in input.apps
	app.id in data.banned
}

ids := [app.id | some app in input.apps]

by_id := {app.id: app.name | some app in input.apps}

summary := {
	"count": count(input.apps),
	"banned": count(banned),
	"org": data.org,
	"flags": {f | some f in input.flags},
	"keyed": {n: true | some n in input.numbers},
}

default allow := false

allow if count(banned) == 0

first := input.apps[0].id
"""
RULES = ("banned", "ids", "by_id", "summary", "allow", "first")
DATA = {"banned": ["com.zhiliaoapp.musically", "com.ss.android.ugc.trill"], "org": "eu-commission"}
INPUTS: list[dict[str, Any]] = [
    {"apps": [], "flags": [], "numbers": []},
    {
        "apps": [
            {"id": "com.zhiliaoapp.musically", "name": "TikTok"},
            {"id": "org.mozilla.firefox", "name": "Firefox"},
            {"id": "com.ss.android.ugc.trill", "name": "TikTok Lite"},
        ],
        "flags": ["zeta", "alpha", "Mid", "alpha", 3, None, True, [1, 2]],
        "numbers": [10, 2, 2.5, -1],
    },
    {"apps": [{"id": "é-app", "name": 'ünïcode "quoted" <tag> & \n'}], "flags": [{"b": 1, "a": 2}]},
    {"apps": [{"id": f"com.example.app{i:03}", "name": f"App {i}"} for i in range(200)], "numbers": [1e3]},
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WasmPolicy]:
    workdir = tmp_path_factory.mktemp("demo")
    bundle = read_bundle(build_wasm(workdir, POLICY, "demo", *(f"demo/{rule}" for rule in RULES)))
    policy = WasmPolicy(bundle.wasm)
    policy.set_data(DATA)
    return workdir, policy


def _wasm_value(policy: WasmPolicy, input_doc: object, entrypoint: str) -> Any:
    try:
        return policy.evaluate(input_doc, entrypoint)
    except UndefinedResultError:
        return UNDEFINED


@pytest.mark.parametrize("case", range(len(INPUTS)))
def test_every_entrypoint_matches_opa_eval(demo: tuple[Path, WasmPolicy], case: int) -> None:
    workdir, policy = demo
    expected = opa_eval(workdir, "data.demo", INPUTS[case], DATA)
    assert policy.evaluate(INPUTS[case], "demo") == expected
    for rule in RULES:
        assert _wasm_value(policy, INPUTS[case], f"demo/{rule}") == expected.get(rule, UNDEFINED), rule


def test_sets_arrays_and_objects_come_out_as_opa_answers_them(demo: tuple[Path, WasmPolicy]) -> None:
    _, policy = demo
    result = policy.evaluate(INPUTS[1], "demo")
    assert result == {
        "allow": False,
        "banned": ["com.ss.android.ugc.trill", "com.zhiliaoapp.musically"],
        "by_id": {
            "com.ss.android.ugc.trill": "TikTok Lite",
            "com.zhiliaoapp.musically": "TikTok",
            "org.mozilla.firefox": "Firefox",
        },
        "first": "com.zhiliaoapp.musically",
        "ids": ["com.zhiliaoapp.musically", "org.mozilla.firefox", "com.ss.android.ugc.trill"],
        "summary": {
            "banned": 2,
            "count": 3,
            "flags": [None, True, 3, "Mid", "alpha", "zeta", [1, 2]],
            "keyed": {"-1": True, "10": True, "2": True, "2.5": True},
            "org": "eu-commission",
        },
    }
    assert list(result) == sorted(result)  # keys sorted, as OPA serialises them
    assert list(result["by_id"]) == sorted(result["by_id"])


def test_undefined_decision_raises(demo: tuple[Path, WasmPolicy]) -> None:
    workdir, policy = demo
    assert opa_eval(workdir, "data.demo.first", INPUTS[0], DATA) is UNDEFINED
    with pytest.raises(UndefinedResultError, match="'demo/first' is undefined"):
        policy.evaluate(INPUTS[0], "demo/first")
    assert issubclass(UndefinedResultError, NoDecisionError)


def test_data_is_loaded_once_and_memory_stays_constant(tmp_path: Path) -> None:
    bundle = read_bundle(build_wasm(tmp_path, POLICY, "demo/summary", "demo/banned"))
    policy = WasmPolicy(bundle.wasm)
    policy.set_data(DATA)
    apps = [{"id": f"app{i}", "name": str(i)} for i in range(50)] + [{"id": DATA["banned"][0], "name": "t"}]
    policy.evaluate({"apps": apps}, "demo/summary")
    pages = policy.memory_pages
    for i in range(10_000):
        got: Any = policy.evaluate({"apps": apps[: i % 52], "flags": [i]}, "demo/summary")
        assert got["count"] == min(i % 52, 51)
        assert got["banned"] == (1 if i % 52 == 51 else 0)
        assert got["flags"] == [i]
    assert policy.memory_pages == pages


def test_set_data_replaces_the_data_document(tmp_path: Path) -> None:
    bundle = read_bundle(build_wasm(tmp_path, POLICY, "demo/banned", "demo/summary"))
    policy = WasmPolicy(bundle.wasm)
    input_doc = INPUTS[1]
    assert policy.evaluate(input_doc, "demo/banned") == []  # default data: {}
    policy.set_data(DATA)
    assert policy.evaluate(input_doc, "demo/banned") == [
        "com.ss.android.ugc.trill",
        "com.zhiliaoapp.musically",
    ]
    policy.set_data({"banned": ["org.mozilla.firefox"], "org": "eeas"})
    assert policy.evaluate(input_doc, "demo/banned") == ["org.mozilla.firefox"]
    summary: Any = policy.evaluate(input_doc, "demo/summary")
    assert summary["org"] == "eeas"


def test_non_string_keys_and_nested_sets_match_opa_eval(tmp_path: Path) -> None:
    rego = """package keys

import rego.v1

o := {[1, 2]: 1, {"a": 1, "b": [2]}: 2, {3, 1}: 3, set(): 4, 1.50: 6, 1e3: 7, null: 8, "<&>": 9}

s := {set(), {3, 1}, [2, 1], {"b": 1, "a": 2}, {"a": 1}, 10, 9.5, -1, "B", "a", "é", [1], true, null, {0, 5}}
"""
    policy = WasmPolicy(read_bundle(build_wasm(tmp_path, rego, "keys")).wasm)
    expected = opa_eval(tmp_path, "data.keys", {})
    assert policy.evaluate({}, "keys") == expected
    assert expected["o"]["[1,3]"] == 3
    assert expected["s"][-3:] == [[], [0, 5], [1, 3]]


def test_entrypoints_by_name_and_id(demo: tuple[Path, WasmPolicy]) -> None:
    _, policy = demo
    assert set(policy.entrypoints) == {"demo", *(f"demo/{rule}" for rule in RULES)}
    assert policy.abi_version[0] == 1 and policy.abi_version[1] >= 2
    ident = policy.entrypoints["demo/ids"]
    assert policy.evaluate(INPUTS[1], ident) == policy.evaluate(INPUTS[1], "demo/ids")
    with pytest.raises(UnknownEntrypointError, match="no entrypoint 'demo/nope'"):
        policy.evaluate({}, "demo/nope")
    with pytest.raises(UnknownEntrypointError, match=r"^no entrypoint with id 999 in policy\.wasm$"):
        policy.evaluate({}, 999)


def test_input_that_is_not_json_is_invalid_input(demo: tuple[Path, WasmPolicy]) -> None:
    _, policy = demo
    with pytest.raises(
        InvalidInputError, match=r"^input is not JSON: Object of type object is not JSON serializable$"
    ):
        policy.evaluate({"apps": [object()]}, "demo")
    with pytest.raises(
        InvalidInputError, match=r"^input is not JSON: Out of range float values are not JSON compliant"
    ):
        policy.evaluate({"x": float("nan")}, "demo")


def test_missing_builtins_are_refused_by_name(tmp_path: Path) -> None:
    rego = """package needs

import rego.v1

x := [net.cidr_expand(input.v), uuid.rfc4122(input.v), time.parse_rfc3339_ns(input.t)]
"""
    bundle = read_bundle(build_wasm(tmp_path, rego, "needs/x"))
    with pytest.raises(MissingBuiltinError) as caught:
        WasmPolicy(bundle.wasm)
    assert caught.value.missing == ("net.cidr_expand", "uuid.rfc4122")
    assert str(caught.value) == (
        "policy needs built-ins the embedded engine does not provide: net.cidr_expand, uuid.rfc4122"
    )
    assert isinstance(caught.value, WasmRuntimeError) and caught.value.exit_code == 3


def test_opa_abort_is_an_error_and_the_policy_stays_usable(tmp_path: Path) -> None:
    rego = """package conflict

import rego.v1

value := v if some v in input.values
"""
    policy = WasmPolicy(read_bundle(build_wasm(tmp_path, rego, "conflict/value")).wasm)
    with pytest.raises(RuntimeError, match="eval_conflict_error"):
        opa_eval(tmp_path, "data.conflict.value", {"values": [1, 2]})
    with pytest.raises(
        PolicyAbortError, match=r"policy aborted: .*policy\.rego:5:1: var assignment conflict"
    ):
        policy.evaluate({"values": [1, 2]}, "conflict/value")
    assert policy.evaluate({"values": [7, 7]}, "conflict/value") == 7
    assert opa_eval(tmp_path, "data.conflict.value", {"values": [7, 7]}) == 7


def test_print_output_is_what_opa_eval_prints(tmp_path: Path) -> None:
    rego = """package printing

import rego.v1

r if {
	print("apps:", count(input.apps), input.o, input.s, {x | x := input.o[_]}, 1.50, [set()], {{1}: 2})
	print({v | some v in input.apps}, "-", input.apps, input.missing)
}
"""
    input_doc = {
        "apps": [3, 1, 2],
        "o": {"b": 1, "a": [1, {"z": None, "c": 'q"\x01\x7f\u200b\n'}]},
        "s": "top\nx",
    }
    bundle = build_wasm(tmp_path, rego, "printing/r", extra_args=["--wasm-include-print"])
    lines: list[str] = []
    policy = WasmPolicy(read_bundle(bundle).wasm, print_hook=lines.append)
    assert policy.evaluate(input_doc, "printing/r") is True
    (tmp_path / "input.json").write_text(json.dumps(input_doc))
    args = ["eval", "-f", "json", "-d", str(tmp_path / "policy.rego"), "-i", str(tmp_path / "input.json")]
    opa = subprocess.run([opa_binary(), *args, "data.printing.r"], capture_output=True, text=True, check=True)
    assert "\n".join(lines) + "\n" == opa.stderr
    assert lines[-1] == "{1, 2, 3} - [3, 1, 2] <undefined>"


def test_a_module_that_is_not_opa_wasm_is_refused() -> None:
    with pytest.raises(WasmRuntimeError, match="not a valid wasm module"):
        WasmPolicy(b"\x00asm garbage")
    empty_module = b"\x00asm\x01\x00\x00\x00"
    with pytest.raises(WasmRuntimeError, match="lacks the global 'opa_wasm_abi_version'"):
        WasmPolicy(empty_module)


def test_without_input_the_input_is_undefined_not_null(tmp_path: Path) -> None:
    rego = "package noinput\n\nimport rego.v1\n\nx := [1 | input]\n"
    policy = WasmPolicy(read_bundle(build_wasm(tmp_path, rego, "noinput/x")).wasm)
    without = subprocess.run(
        [opa_binary(), "eval", "-f", "json", "-d", str(tmp_path / "policy.rego"), "data.noinput.x"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(without.stdout)["result"][0]["expressions"][0]["value"] == []
    assert policy.evaluate(entrypoint="noinput/x") == []
    assert policy.evaluate(None, "noinput/x") == opa_eval(tmp_path, "data.noinput.x", None) == [1]


def test_an_evaluation_cut_short_leaves_a_fresh_instance_with_the_same_data(tmp_path: Path) -> None:
    """A strict built-in error unwinds past the module's stack pointer; thousands of them exhausted
    the instance's stack (a trap in opa_value_parse after about 4,000). The instance is replaced."""
    rego = "package strict\n\nimport rego.v1\n\nx := [time.parse_rfc3339_ns(input.at), data.d]\n"
    policy = WasmPolicy(read_bundle(build_wasm(tmp_path, rego, "strict/x")).wasm, strict_builtin_errors=True)
    policy.set_data({"d": "kept"})
    store = policy._store
    with pytest.raises(BuiltinEvalError):
        policy.evaluate({"at": "yesterday"}, "strict/x")
    assert policy._store is not store
    assert policy.evaluate({"at": "1970-01-01T00:00:01Z"}, "strict/x") == [1_000_000_000, "kept"]


def test_a_trap_names_its_function_and_offset() -> None:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    wat = '(module (func $inner unreachable) (func $outer (export "outer") call $inner))'
    instance = wasmtime.Instance(store, wasmtime.Module(engine, wat), [])
    outer = instance.exports(store)["outer"]
    assert isinstance(outer, wasmtime.Func)
    with pytest.raises(wasmtime.Trap) as caught:
        outer(store)
    assert trap_text(caught.value) == (
        "wasm `unreachable` instruction executed (in inner at 0x23, called from outer at 0x27)"
    )
