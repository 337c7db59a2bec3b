"""Calling exported wasm functions of i32 parameters and results without wasmtime-py's per-call cost.

``wasmtime.Func.__call__`` asks the C API for the function's type, builds a ``Val`` per argument,
compares value types and unroots every value on each call: tens of microseconds per call, more than a
small wasm function itself. OPA's ABI only uses i32 (addresses, lengths, ids), so :class:`RawFunc`
checks the type once and then calls ``wasmtime_func_call_unchecked`` directly, with a reusable
argument buffer and plain integers for the pointers.

Errors behave as with ``Func.__call__``: a trap raises ``wasmtime.Trap``, an error
``wasmtime.WasmtimeError``, and a Python exception raised by a host function during the call is
re-raised as itself. When this wasmtime-py does not expose what is needed, :func:`raw_func` returns
None and the caller keeps using ``Func.__call__``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import wasmtime

__all__ = ["RawFunc", "raw_func"]

_SLOT = 16  # sizeof(wasmtime_val_raw_t): the i32 of slot i is at byte 16 * i
_INTS_PER_SLOT = _SLOT // 4


class RawFunc:
    """One exported function of (i32...) -> () or (i32...) -> i32, bound to its store."""

    __slots__ = (
        "_args",
        "_args_addr",
        "_busy",
        "_call",
        "_ctx",
        "_func",
        "_func_addr",
        "_nparams",
        "_nresults",
        "_raise_last",
        "_slots",
        "_store",
        "_to_error",
        "_to_trap",
        "_trap",
        "_trap_addr",
    )

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func, parts: _Parts) -> None:
        ty = func.type(store)
        i32 = wasmtime.ValType.i32()
        params, results = list(ty.params), list(ty.results)
        if any(p != i32 for p in params) or any(r != i32 for r in results) or len(results) > 1:
            raise TypeError("not an i32 function")
        self._store, self._func = store, func  # keep both alive: the addresses below point into them
        self._nparams, self._nresults = len(params), len(results)
        self._slots = max(len(params), len(results), 1)
        self._args = (ctypes.c_int32 * (self._slots * _INTS_PER_SLOT))()
        self._args_addr = ctypes.addressof(self._args)
        self._trap = ctypes.c_void_p()
        self._trap_addr = ctypes.addressof(self._trap)
        self._ctx = parts.context(store)
        self._func_addr = ctypes.addressof(func._func)
        self._call, self._to_error, self._to_trap, self._raise_last = (
            parts.call,
            parts.to_error,
            parts.to_trap,
            parts.raise_last,
        )
        self._busy = False

    def __call__(self, *args: int) -> Any:
        if len(args) != self._nparams:
            raise wasmtime.WasmtimeError(f"expected {self._nparams} parameters, got {len(args)}")
        if self._busy:  # re-entered from a host function: use a fresh buffer
            buffer = (ctypes.c_int32 * (self._slots * _INTS_PER_SLOT))()
            return self._invoke(buffer, ctypes.addressof(buffer), ctypes.c_void_p(), args)
        self._busy = True
        try:
            return self._invoke(self._args, self._args_addr, self._trap, args)
        finally:
            self._busy = False

    def _invoke(
        self, buffer: ctypes.Array[ctypes.c_int32], addr: int, trap: ctypes.c_void_p, args: tuple[int, ...]
    ) -> Any:
        for index, value in enumerate(args):
            buffer[index * _INTS_PER_SLOT] = value
        trap.value = None
        trap_addr = self._trap_addr if trap is self._trap else ctypes.addressof(trap)
        error = self._call(self._ctx, self._func_addr, addr, self._slots, trap_addr)
        if error:
            exc = self._to_error(error)
            self._raise_last()
            raise exc
        if trap.value:
            exc = self._to_trap(trap.value)
            self._raise_last()
            raise exc
        return buffer[0] if self._nresults else None


class _Parts:
    """What :class:`RawFunc` needs from wasmtime-py's internals, looked up once."""

    def __init__(self) -> None:
        from wasmtime import _bindings, _ffi, _func

        if ctypes.sizeof(_ffi.wasmtime_val_raw_t) != _SLOT:
            raise TypeError("unexpected wasmtime_val_raw_t layout")
        if len(_bindings._wasmtime_func_call_unchecked.argtypes) != 5:  # (context, func, args, len, trap)
            raise TypeError("unexpected wasmtime_func_call_unchecked signature")
        call = _ffi.dll["wasmtime_func_call_unchecked"]  # a private function object: our argtypes
        call.restype = ctypes.c_void_p
        call.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        self.call: Callable[..., int | None] = call
        error_ptr = ctypes.POINTER(_ffi.wasmtime_error_t)
        trap_ptr = ctypes.POINTER(_ffi.wasm_trap_t)
        from_error, from_trap = wasmtime.WasmtimeError._from_ptr, wasmtime.Trap._from_ptr

        def to_error(address: int) -> BaseException:
            return from_error(ctypes.cast(address, error_ptr))

        def to_trap(address: int) -> BaseException:
            return from_trap(ctypes.cast(address, trap_ptr))

        self.to_error, self.to_trap = to_error, to_trap
        self.raise_last: Callable[[], None] = _func.maybe_raise_last_exn

    @staticmethod
    def context(store: wasmtime.Store) -> int:
        pointer = store._context()
        address = ctypes.cast(pointer, ctypes.c_void_p).value
        if not address:
            raise ValueError("store is closed")
        return address


_PARTS: list[_Parts | None] = []


def raw_func(store: wasmtime.Store, func: wasmtime.Func) -> RawFunc | None:
    """A :class:`RawFunc` for ``func``, or None when it cannot be had (then use ``func`` itself)."""
    if not _PARTS:
        try:
            _PARTS.append(_Parts())
        except (ImportError, AttributeError, TypeError, ValueError, OSError):
            _PARTS.append(None)
    parts = _PARTS[0]
    if parts is None:
        return None
    try:
        return RawFunc(store, func, parts)
    except (AttributeError, TypeError, ValueError, wasmtime.WasmtimeError):
        return None
