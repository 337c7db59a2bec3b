"""Built-ins against the real OPA, many cases per ``opa eval``.

One policy holds, for each built-in under test, a rule over an input array of argument lists
(``all_<n>``: case index to result; a built-in error leaves the index out, as in OPA's default mode) and
a rule for one call (``one_<n>``, for ``--strict-builtin-errors``, where an error fails the whole query).
The same policy is compiled to wasm once and evaluated by the embedded engine in both modes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pyagent.engines.wasm import BuiltinEvalError, UndefinedResultError, WasmPolicy, read_bundle
from tests.helpers.opa_bin import UNDEFINED, build_wasm, opa_eval

#: Strict-mode cases checked one by one against ``opa eval`` (each is one process); the rest of the
#: failing cases are still checked in-process to fail in strict mode.
STRICT_SAMPLES = 12


@dataclass
class Differential:
    """A compiled policy calling ``builtins`` (OPA name to arity), and both engines to ask."""

    workdir: Path
    builtins: dict[str, int]
    lenient: WasmPolicy = field(init=False)
    strict: WasmPolicy = field(init=False)

    def __post_init__(self) -> None:
        rules = ["package d", "", "import rego.v1", ""]
        entrypoints = []
        for n, (name, arity) in enumerate(self.builtins.items()):
            args = ", ".join(f"args[{i}]" for i in range(arity))
            one = ", ".join(f"input.args[{i}]" for i in range(arity))
            rules += [
                f"all_{n} := {{i: r | some i, args in input.cases; r := {name}({args})}}",
                "",
                f"one_{n} := {name}({one})",
                "",
            ]
            entrypoints += [f"d/all_{n}", f"d/one_{n}"]
        wasm = read_bundle(build_wasm(self.workdir, "\n".join(rules), *entrypoints)).wasm
        self.lenient = WasmPolicy(wasm, module_cache=False)
        self.strict = WasmPolicy(wasm, module_cache=False, strict_builtin_errors=True)

    def check(self, name: str, cases: list[list[Any]]) -> dict[str, Any]:
        """Both engines agree on every case in both modes; returns OPA's answers (case index to result)."""
        n = list(self.builtins).index(name)
        input_doc = {"cases": cases}
        expected = opa_eval(self.workdir, f"data.d.all_{n}", input_doc)
        actual = self.lenient.evaluate(input_doc, f"d/all_{n}")
        assert actual == expected, _differences(cases, actual, expected)
        failing = [case for i, case in enumerate(cases) if str(i) not in expected]
        defined = [case for i, case in enumerate(cases) if str(i) in expected]
        strict_doc = {"cases": defined}
        assert self.strict.evaluate(strict_doc, f"d/all_{n}") == opa_eval(
            self.workdir, f"data.d.all_{n}", strict_doc, strict_builtin_errors=True
        )
        for index, case in enumerate(failing):
            with pytest.raises(BuiltinEvalError, match=f"^{name.replace('.', '[.]')}: "):
                self.strict.evaluate({"args": case}, f"d/one_{n}")
            if index < STRICT_SAMPLES:
                with pytest.raises(RuntimeError, match=r"eval_(builtin|type)_error"):
                    opa_eval(self.workdir, f"data.d.one_{n}", {"args": case}, strict_builtin_errors=True)
        return dict(expected)

    def one(self, name: str, args: list[Any]) -> Any:
        """The embedded engine's answer for one call (UNDEFINED on a built-in error)."""
        try:
            return self.lenient.evaluate({"args": args}, f"d/one_{list(self.builtins).index(name)}")
        except UndefinedResultError:
            return UNDEFINED


def _differences(cases: list[list[Any]], actual: Any, expected: Any) -> str:
    keys = sorted(set(actual) | set(expected), key=int)
    missing = "<undefined>"
    return "\n".join(
        f"{cases[int(k)]!r}: embedded {actual.get(k, missing)!r}, opa {expected.get(k, missing)!r}"
        for k in keys
        if actual.get(k, UNDEFINED) != expected.get(k, UNDEFINED)
    )
