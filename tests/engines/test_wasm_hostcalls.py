"""The host side of built-in calls: shipped built-ins memoised by operand text, nothing else."""

from __future__ import annotations

import gc
import signal
import threading
import weakref
from pathlib import Path
from typing import Any

import pytest

from pyagent.engines.wasm import HOST_BUILTINS, BuiltinEvalError, WasmPolicy, read_bundle
from pyagent.engines.wasm.builtins import clock
from pyagent.engines.wasm.hostcalls import HostCalls
from tests.helpers.opa_bin import build_wasm

PARSE = "time.parse_rfc3339_ns"
MARCH_15 = b'"2023-03-15T00:00:00Z"'
MARCH_15_NS = b"1678838400000000000"

INSTANT_POLICY = """package t

import rego.v1

now := time.parse_rfc3339_ns(input.at)
"""


@pytest.fixture
def counted_parse(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The shipped ``time.parse_rfc3339_ns``, counting its calls (HOST_BUILTINS resolves it by name)."""
    calls: list[str] = []
    shipped = clock.parse_rfc3339_ns

    def counting(value: object) -> int:
        calls.append(str(value))
        return shipped(value)

    monkeypatch.setattr(clock, "parse_rfc3339_ns", counting)
    return calls


def _lines() -> list[str]:
    return []


def test_a_shipped_builtin_runs_once_per_operand_text(counted_parse: list[str]) -> None:
    host = HostCalls({PARSE: 7}, HOST_BUILTINS, strict=False, print_line=_lines().append)
    assert host.answer(7, (MARCH_15,)) == MARCH_15_NS
    assert host.answer(7, (MARCH_15,)) == MARCH_15_NS
    assert host.answer(7, (b'"2023-03-15T01:00:00+01:00"',)) == MARCH_15_NS
    assert counted_parse == ["2023-03-15T00:00:00Z", "2023-03-15T01:00:00+01:00"]


def test_errors_are_never_memoised(counted_parse: list[str]) -> None:
    lenient = HostCalls({PARSE: 0}, HOST_BUILTINS, strict=False, print_line=_lines().append)
    assert lenient.answer(0, (b'"yesterday"',)) is None
    assert lenient.answer(0, (b'"yesterday"',)) is None
    strict = HostCalls({PARSE: 0}, HOST_BUILTINS, strict=True, print_line=_lines().append)
    for _ in range(2):
        with pytest.raises(BuiltinEvalError, match=r'^time\.parse_rfc3339_ns: parsing time "yesterday"'):
            strict.answer(0, (b'"yesterday"',))
    assert counted_parse == ["yesterday"] * 4


def test_a_callers_own_builtin_is_called_every_time() -> None:
    seen: list[object] = []

    def from_the_caller(value: object) -> int:
        seen.append(value)
        return len(seen)

    host = HostCalls({PARSE: 1}, {PARSE: from_the_caller}, strict=False, print_line=_lines().append)
    assert [host.answer(1, (MARCH_15,)) for _ in range(3)] == [b"1", b"2", b"3"]
    assert seen == ["2023-03-15T00:00:00Z"] * 3


def test_long_operands_are_not_kept_and_the_memo_is_bounded(counted_parse: list[str]) -> None:
    host = HostCalls({PARSE: 0}, HOST_BUILTINS, strict=False, print_line=_lines().append)
    long_text = b'"2023-03-15T00:00:00.' + b"1" * 2000 + b'Z"'  # valid: Go reads nine fraction digits
    assert host.answer(0, (long_text,)) == host.answer(0, (long_text,)) == b"1678838400111111111"
    assert len(counted_parse) == 2 and host._memo == {}  # over 1,024 bytes of operands: run each time
    instants = [f'"2023-03-15T00:00:{s // 60:02d}.{s % 60:02d}Z"'.encode() for s in range(300)]
    for text in instants:
        host.answer(0, (text,))
    assert len(host._memo) == 300 - 256  # full at 256 distinct operand lists: started afresh
    counted_parse.clear()
    assert host.answer(0, (instants[-1],)) == b"1678838404590000000"  # 00:00:04.59
    assert host.answer(0, (instants[0],)) == b"1678838400000000000"
    assert counted_parse == ["2023-03-15T00:00:00.00Z"]  # the newest was kept, the oldest was dropped


def test_print_writes_each_line_and_has_no_value() -> None:
    lines: list[str] = []
    host = HostCalls({"internal.print": 3}, HOST_BUILTINS, strict=False, print_line=lines.append)
    assert host.answer(3, (b'[{"a"}, {"b", "c"}]',)) is None
    assert host.answer(3, (b'[{"a"}, {"b", "c"}]',)) is None
    assert lines == ["a b", "a c"] * 2


def test_a_policy_answers_each_instant_with_its_own_value(tmp_path: Path, counted_parse: list[str]) -> None:
    policy = WasmPolicy(read_bundle(build_wasm(tmp_path, INSTANT_POLICY, "t/now")).wasm)
    answers: dict[str, Any] = {}
    for at in ["2023-03-15T00:00:00Z", "2023-03-14T23:59:59.999999999Z", "2023-03-15T00:00:00Z"]:
        answers[at] = policy.evaluate({"at": at}, "t/now")
    assert answers == {
        "2023-03-15T00:00:00Z": 1678838400000000000,
        "2023-03-14T23:59:59.999999999Z": 1678838399999999999,
    }
    assert counted_parse == ["2023-03-15T00:00:00Z", "2023-03-14T23:59:59.999999999Z"]


@pytest.mark.parametrize("through", ["c-callback", "wasmtime-py"])
def test_host_calls_answer_and_fail_alike_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, through: str
) -> None:
    from pyagent.engines.wasm import fastcall, runtime

    if through == "wasmtime-py":
        monkeypatch.setattr(runtime, "raw_import", lambda arity, func, result=True: None)
    wasm = read_bundle(build_wasm(tmp_path, INSTANT_POLICY, "t/now")).wasm
    policy = WasmPolicy(wasm, module_cache=False)
    raw = [isinstance(r, fastcall.RawImport) for r in policy._raw_builtins]
    assert raw == [through == "c-callback"] * 5
    assert policy.evaluate({"at": "2023-03-15T00:00:00Z"}, "t/now") == 1678838400000000000

    def broken(value: object) -> int:
        raise KeyError("oops")

    failing = WasmPolicy(wasm, module_cache=False, host_builtins={PARSE: broken})
    for _ in range(2):  # the exception itself, each time; the policy stays usable
        with pytest.raises(
            BuiltinEvalError, match=r"^time\.parse_rfc3339_ns: host built-in failed: KeyError"
        ):
            failing.evaluate({"at": "2023-03-15T00:00:00Z"}, "t/now")
    interrupted = WasmPolicy(wasm, module_cache=False, host_builtins={PARSE: _interrupt})
    with pytest.raises(KeyboardInterrupt):
        interrupted.evaluate({"at": "2023-03-15T00:00:00Z"}, "t/now")


def _interrupt(value: object) -> int:
    raise KeyboardInterrupt


def test_long_results_are_not_kept() -> None:
    calls: list[str] = []

    def wide(value: object) -> str:  # as a format with a wide field: a short operand, a long result
        calls.append(str(value))
        return str(value) * 3000

    host = HostCalls({"strings.count": 2}, {"strings.count": wide}, strict=False, print_line=_lines().append)
    host._pure.add(2)  # as if it were a shipped, pure built-in
    assert host.answer(2, (b'"ab"',)) == host.answer(2, (b'"ab"',)) == b'"' + b"ab" * 3000 + b'"'
    assert calls == ["ab", "ab"] and host._memo == {}


def test_a_dropped_policy_is_freed(tmp_path: Path) -> None:
    """No global table keeps a policy's host functions (wasmtime-py's does for define_func)."""
    wasm = read_bundle(build_wasm(tmp_path, INSTANT_POLICY, "t/now")).wasm
    policy = WasmPolicy(wasm, module_cache=False)
    assert policy.evaluate({"at": "2023-03-15T00:00:00Z"}, "t/now") == 1678838400000000000
    gone = weakref.ref(policy)
    del policy
    gc.collect()
    assert gone() is None


def test_without_wasmtime_s_internals_both_directions_fall_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyagent.engines.wasm import fastcall

    monkeypatch.setattr(fastcall, "_PARTS", [None])
    wasm = read_bundle(build_wasm(tmp_path, INSTANT_POLICY, "t/now")).wasm
    policy = WasmPolicy(wasm, module_cache=False)
    assert not isinstance(policy._ex.eval, fastcall.RawFunc)
    assert policy._raw_builtins == [None] * 5 and policy._raw_abort is None
    assert policy.evaluate({"at": "2023-03-15T00:00:00Z"}, "t/now") == 1678838400000000000


class Tick(Exception):
    """What a signal handler raises (as Ctrl-C's raises KeyboardInterrupt)."""


def _tick(signum: int, frame: object) -> None:
    raise Tick(signum)


def test_a_signal_during_a_host_call_is_handled_after_the_call(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """While wasm runs, asynchronous signals are held: a handler that raises never runs inside a host
    callback (the exception would escape the C callback and leave wasmtime an undefined trap)."""
    held: list[bool] = []

    def signalling(value: object) -> int:
        # to this thread (a process-wide one may go to another thread, which holds nothing: see
        # fastcall.hold_signals), while the module waits for this answer
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        held.append(signal.SIGUSR1 in signal.pthread_sigmask(signal.SIG_BLOCK, ()))
        return 7

    wasm = read_bundle(build_wasm(tmp_path, INSTANT_POLICY, "t/now")).wasm
    policy = WasmPolicy(wasm, module_cache=False, host_builtins={PARSE: signalling})
    previous = signal.signal(signal.SIGUSR1, _tick)
    try:
        with pytest.raises(Tick):
            policy.evaluate({"at": "2023-03-15T00:00:00Z"}, "t/now")
        assert held == [True]
        assert signal.SIGUSR1 not in signal.pthread_sigmask(signal.SIG_BLOCK, ())
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        assert policy.evaluate({"at": "2023-03-15T00:00:00Z"}, "t/now") == 7  # still usable
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert "Exception ignored" not in capfd.readouterr().err
