"""The embedded engine's runtime: OPA policies compiled to WebAssembly, evaluated in-process."""

from pyagent.engines.wasm.builtins import HOST_BUILTINS, BuiltinError, HostBuiltin, UnsupportedBuiltinUse
from pyagent.engines.wasm.bundle import BundleError, WasmBundle, read_bundle
from pyagent.engines.wasm.runtime import (
    BuiltinEvalError,
    MissingBuiltinError,
    PolicyAbortError,
    UndefinedResultError,
    UnknownEntrypointError,
    WasmPolicy,
    WasmRuntimeError,
)

__all__ = [
    "HOST_BUILTINS",
    "BuiltinError",
    "BuiltinEvalError",
    "BundleError",
    "HostBuiltin",
    "MissingBuiltinError",
    "PolicyAbortError",
    "UndefinedResultError",
    "UnknownEntrypointError",
    "UnsupportedBuiltinUse",
    "WasmBundle",
    "WasmPolicy",
    "WasmRuntimeError",
    "read_bundle",
]
