"""What the embedded engine's runtime raises when it gives no decision, and how a wasm trap or a
wasmtime error is told in one line (its cause, and the innermost functions with their offsets)."""

from __future__ import annotations

import wasmtime

from pyagent.engines.base import EngineError

__all__ = [
    "BuiltinEvalError",
    "MissingBuiltinError",
    "PolicyAbortError",
    "UndefinedResultError",
    "UnknownEntrypointError",
    "WasmRuntimeError",
    "first_line",
    "trap_text",
]


class WasmRuntimeError(EngineError):
    """The wasm engine could not produce a decision (exit code 3)."""


class MissingBuiltinError(WasmRuntimeError):
    """The policy needs built-ins that this host does not implement."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = tuple(sorted(missing))
        super().__init__(
            "policy needs built-ins the embedded engine does not provide: " + ", ".join(self.missing)
        )


class UndefinedResultError(WasmRuntimeError):
    """The entrypoint's value is undefined for this input and data."""


class UnknownEntrypointError(WasmRuntimeError):
    """No entrypoint of that name or id was compiled into the module."""


class PolicyAbortError(WasmRuntimeError):
    """The policy called ``opa_abort`` (e.g. a rule produced conflicting values) or trapped."""


class BuiltinEvalError(WasmRuntimeError):
    """A host built-in failed and built-in errors are strict, or it was used in an unsupported way."""


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def trap_text(trap: wasmtime.Trap) -> str:
    """The trap's cause, and where: the innermost wasm functions with their module offsets."""
    lines = [line.strip() for line in str(trap).splitlines() if line.strip()]
    cause = lines[-1].split(": ", 1)[-1] if lines else "trap"
    try:
        frames = [
            f"{f.func_name or f'function {f.func_index}'} at 0x{f.module_offset:x}" for f in trap.frames
        ]
    except (AttributeError, wasmtime.WasmtimeError):  # pragma: no cover - a trap without frames
        frames = []
    return cause + (f" (in {', called from '.join(frames[:3])})" if frames else "")
