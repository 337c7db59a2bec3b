"""Answering the module's calls to host built-ins (``env.opa_builtinN``), as JSON text.

:class:`HostCalls` maps the ids the module declares (its ``builtins`` export) to their host
implementations, decodes the operands OPA's way, runs the built-in and encodes its result. Built-ins the
module needs but this host lacks are refused when the policy is loaded (:class:`MissingBuiltinError`).

Every built-in of :data:`~pyagent.engines.wasm.builtins.HOST_BUILTINS` is a pure function of its
operands (no clock, no I/O, no randomness), so their results are memoised by operand text: a policy
calls ``time.parse_rfc3339_ns(input.at)`` once per decision, and a fleet run decides every device at
the same instant. Errors are never memoised, nor are the results of built-ins a caller supplied itself
(``host_builtins=``), which need not be pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from pyagent.engines.encode import encode_json
from pyagent.engines.wasm.builtins import (
    HOST_BUILTINS,
    RAW_OPERANDS,
    BuiltinError,
    HostBuiltin,
    UnsupportedBuiltinUse,
)
from pyagent.engines.wasm.errors import BuiltinEvalError, MissingBuiltinError, WasmRuntimeError
from pyagent.engines.wasm.values import RegoValueError, decode_value, print_lines
from pyagent.errors import PyagentError

__all__ = ["PRINT", "HostCalls"]

PRINT = "internal.print"  # what Rego's print() compiles to (opa build --wasm-include-print)

_MEMO_ENTRIES = 256  # distinct operand lists kept; the memo starts afresh when full
_MEMO_OPERAND_BYTES = 1024  # operands longer than this (in all) are not memoised
_MEMO_RESULT_BYTES = 4096  # nor results longer than this (sprintf widths, units.parse digits)


class HostCalls:
    """The host side of one module's built-in calls (not thread-safe, as the policy it serves)."""

    def __init__(
        self,
        required: Mapping[str, object],
        host_builtins: Mapping[str, HostBuiltin],
        *,
        strict: bool,
        print_line: Callable[[str], None],
    ) -> None:
        """``required``: the module's ``builtins`` export (OPA name to id)."""
        missing = [name for name in required if name not in host_builtins and name != PRINT]
        if missing:
            raise MissingBuiltinError(missing)
        self._strict = strict
        self._print_line = print_line
        self._dispatch: dict[int, tuple[str, HostBuiltin | None]] = {}
        self._pure: set[int] = set()
        for name, ident in required.items():
            if not isinstance(ident, int) or isinstance(ident, bool):
                raise WasmRuntimeError(f"policy.wasm: the builtins export gives {name!r} the id {ident!r}")
            impl = None if name == PRINT else host_builtins[name]
            self._dispatch[ident] = (name, impl)
            if impl is not None and name in HOST_BUILTINS and impl is HOST_BUILTINS[name]:
                self._pure.add(ident)
        self._memo: dict[tuple[int, tuple[bytes, ...]], bytes] = {}

    def __contains__(self, builtin_id: object) -> bool:
        return builtin_id in self._dispatch

    def name(self, builtin_id: int) -> str:
        """The OPA name of a declared built-in."""
        return self._dispatch[builtin_id][0]

    def answer(self, builtin_id: int, operands: tuple[bytes, ...]) -> bytes | None:
        """The JSON text of the built-in's value for ``operands`` (each the module's JSON dump of a
        Rego value), or None when the expression is undefined (a built-in error, non-strict) or has no
        value (``print``)."""
        name, impl = self._dispatch[builtin_id]
        if impl is None:
            for text in operands:
                for line in print_lines(text):
                    self._print_line(line)
            return None  # print() never makes its rule undefined (OPA's SDKs answer NULL too)
        key = (builtin_id, operands)
        memoise = builtin_id in self._pure and sum(map(len, operands)) <= _MEMO_OPERAND_BYTES
        if memoise and (known := self._memo.get(key)) is not None:
            return known
        raw = self._run(name, impl, operands)
        if memoise and raw is not None and len(raw) <= _MEMO_RESULT_BYTES:
            if len(self._memo) >= _MEMO_ENTRIES:
                self._memo.clear()
            self._memo[key] = raw
        return raw

    def _run(self, name: str, impl: HostBuiltin, operands: tuple[bytes, ...]) -> bytes | None:
        try:
            args: list[Any] = (
                list(operands)
                if name in RAW_OPERANDS
                else [decode_value(text, decimals=True) for text in operands]
            )
        except (RegoValueError, UnicodeDecodeError) as err:
            raise WasmRuntimeError(f"{name}: cannot decode an argument: {err}") from err
        try:
            value = impl(*args)
        except BuiltinError as err:
            if self._strict:
                raise BuiltinEvalError(f"{name}: {err}") from err
            return None  # the expression is undefined, as in OPA's non-strict evaluation
        except UnsupportedBuiltinUse as err:
            raise BuiltinEvalError(f"{name}: unsupported by the embedded engine: {err}") from err
        except PyagentError:
            raise
        except Exception as err:  # a defect in the host built-in: fail the evaluation, keep the cause
            raise BuiltinEvalError(f"{name}: host built-in failed: {err!r}") from err
        if isinstance(value, Decimal):  # a number with its exact text (units.parse: ten decimals)
            return format(value, "f").encode()
        return encode_json(value, f"the result of {name}")
