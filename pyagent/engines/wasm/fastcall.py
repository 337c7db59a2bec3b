"""Calls between Python and wasm functions of i32 parameters and results, without wasmtime-py's
per-call cost.

``wasmtime.Func.__call__`` asks the C API for the function's type, builds a ``Val`` per argument,
compares value types and unroots every value on each call: tens of microseconds per call, more than a
small wasm function itself. OPA's ABI only uses i32 (addresses, lengths, ids), so :class:`RawFunc`
checks the type once and then calls ``wasmtime_func_call_unchecked`` directly, with a reusable
argument buffer and plain integers for the pointers.

Errors behave as with ``Func.__call__``: a trap raises ``wasmtime.Trap``, an error
``wasmtime.WasmtimeError``, and a Python exception raised by a host function during the call is
re-raised as itself. When this wasmtime-py does not expose what is needed, :func:`raw_func` returns
None and the caller keeps using ``Func.__call__``.

The other direction, the module calling the host: wasmtime-py's trampoline builds a ``Caller`` and a
``Val`` per argument on every call (about ten times the cost of the call itself), so a
:class:`RawImport` (:func:`raw_import`) defines an (i32...) -> i32 import through
``wasmtime_linker_define_func_unchecked`` with a ctypes callback that reads the arguments from
wasmtime's raw value buffer. A Python exception raised by the host function becomes a trap and is
re-raised as itself by the call that entered wasm, as with wasmtime-py's own host functions. When the
C API cannot be reached this way, :func:`raw_import` returns None and the caller defines the import
with ``Linker.define_func``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import wasmtime

__all__ = ["RawFunc", "RawImport", "hold_signals", "raw_func", "raw_import", "release_signals", "signal_mask"]

_SLOT = 16  # sizeof(wasmtime_val_raw_t): the i32 of slot i is at byte 16 * i
_INTS_PER_SLOT = _SLOT // 4
_I32_P = ctypes.POINTER(ctypes.c_int32)
#: wasmtime_func_unchecked_callback_t: (env, caller, args_and_results, count) -> wasm_trap_t* or NULL
_UNCHECKED = ctypes.CFUNCTYPE(
    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t
)


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
        self.define: Callable[..., int | None] | None = None
        self.trap_for: Callable[[BaseException], int | None] | None = None
        # without them, host functions go through wasmtime-py's define_func; exports still called directly
        with contextlib.suppress(AttributeError, KeyError, TypeError, ValueError, OSError):
            self._import_parts(_ffi, _func)

    def _import_parts(self, _ffi: Any, _func: Any) -> None:
        define = _ffi.dll["wasmtime_linker_define_func_unchecked"]
        define.restype = ctypes.c_void_p
        # (linker, module, module_len, name, name_len, functype, callback, env, finalizer)
        define.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_char_p,
            ctypes.c_size_t,
        ]
        define.argtypes += [ctypes.c_void_p, _UNCHECKED, ctypes.c_void_p, ctypes.c_void_p]
        if not hasattr(_func, "LAST_EXCEPTION") or not hasattr(wasmtime.Trap, "_consume"):
            raise TypeError("unexpected wasmtime-py internals")

        def trap_for(err: BaseException) -> int | None:
            """A new trap for wasm to unwind with; ``err`` is what the call into wasm re-raises."""
            _func.LAST_EXCEPTION = err  # as wasmtime-py's own trampoline does
            trap = wasmtime.Trap("python exception")._consume()
            return ctypes.cast(trap, ctypes.c_void_p).value

        self.define, self.trap_for = define, trap_for

    @staticmethod
    def context(store: wasmtime.Store) -> int:
        pointer = store._context()
        address = ctypes.cast(pointer, ctypes.c_void_p).value
        if not address:
            raise ValueError("store is closed")
        return address


_PARTS: list[_Parts | None] = []


def _parts() -> _Parts | None:
    if not _PARTS:
        try:
            _PARTS.append(_Parts())
        except (ImportError, AttributeError, KeyError, TypeError, ValueError, OSError):
            _PARTS.append(None)
    return _PARTS[0]


def raw_func(store: wasmtime.Store, func: wasmtime.Func) -> RawFunc | None:
    """A :class:`RawFunc` for ``func``, or None when it cannot be had (then use ``func`` itself)."""
    parts = _parts()
    if parts is None:
        return None
    try:
        return RawFunc(store, func, parts)
    except (AttributeError, TypeError, ValueError, wasmtime.WasmtimeError):
        return None


class RawImport:
    """A host function of (i32 * ``arity``) -> i32 (or -> nothing) as a C callback for wasmtime; define
    it on any number of linkers with :meth:`define` (it must outlive the stores of the instances that
    import it). No global table holds it or ``func``: it lives as long as its owner keeps it."""

    __slots__ = ("_callback", "_define", "_functype", "_to_error")

    def __init__(self, arity: int, func: Callable[..., Any], parts: _Parts, *, result: bool = True) -> None:
        trap_for, self._define, self._to_error = parts.trap_for, parts.define, parts.to_error
        if trap_for is None or self._define is None:
            raise TypeError("wasmtime's unchecked host functions are not reachable")
        i32 = wasmtime.ValType.i32()
        self._functype = wasmtime.FuncType([i32] * arity, [i32] if result else [])
        offsets = [i * _INTS_PER_SLOT for i in range(arity)]
        slots_needed = max(arity, 1 if result else 0)

        def callback(_env: int | None, _caller: int | None, raw: int | None, count: int) -> int | None:
            try:
                if count < slots_needed or raw is None:
                    raise wasmtime.WasmtimeError(f"host call with {count} slots for {arity} arguments")
                slots = ctypes.cast(raw, _I32_P)
                value = func(*[slots[i] for i in offsets])
                if result:
                    slots[0] = ctypes.c_int32(value).value
                return None
            except BaseException as err:  # re-raised as itself by the call that entered wasm
                return trap_for(err)

        self._callback = _UNCHECKED(callback)

    def define(self, linker: wasmtime.Linker, module: str, name: str) -> None:
        """Define this function on ``linker`` as ``module.name``."""
        module_bytes, name_bytes = module.encode(), name.encode()
        assert self._define is not None
        error = self._define(
            ctypes.cast(linker.ptr(), ctypes.c_void_p),
            module_bytes,
            len(module_bytes),
            name_bytes,
            len(name_bytes),
            ctypes.cast(self._functype.ptr(), ctypes.c_void_p),
            self._callback,
            None,
            None,
        )
        if error:
            raise self._to_error(error)


def raw_import(arity: int, func: Callable[..., Any], *, result: bool = True) -> RawImport | None:
    """``func`` as a :class:`RawImport`, or None when wasmtime's C API cannot be reached this way (then
    define the import with ``Linker.define_func``)."""
    parts = _parts()
    if parts is None or parts.define is None:
        return None
    return RawImport(arity, func, parts, result=result)


#: Signals that arrive from outside (Ctrl-C, kill, timers). Not the ones a fault raises: wasmtime turns
#: SIGSEGV, SIGBUS, SIGILL and SIGFPE into traps, which must never be blocked.
_ASYNC_SIGNALS: frozenset[int] = frozenset(
    getattr(signal, name)
    for name in (
        "SIGINT",
        "SIGTERM",
        "SIGHUP",
        "SIGQUIT",
        "SIGALRM",
        "SIGUSR1",
        "SIGUSR2",
        "SIGVTALRM",
        "SIGPROF",
        "SIGCHLD",
        "SIGPIPE",
        "SIGWINCH",
        "SIGXCPU",
    )
    if hasattr(signal, name)
)


class _Masks:
    """The thread's signal mask through libc's ``pthread_sigmask`` on a raw ``sigset_t`` (glibc's: 1,024
    bits): ``signal.pthread_sigmask`` turns every mask it returns into a set of ``Signals`` members, which
    costs about 2 us per signal held, on every evaluation."""

    _WORDS = 1024 // (8 * ctypes.sizeof(ctypes.c_ulong))

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._sigmask = libc.pthread_sigmask
        self._sigmask.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        self._sigmask.restype = ctypes.c_int
        bits = 8 * ctypes.sizeof(ctypes.c_ulong)
        self.held = (ctypes.c_ulong * self._WORDS)()
        for number in _ASYNC_SIGNALS:
            self.held[(number - 1) // bits] |= 1 << ((number - 1) % bits)

    def current(self) -> ctypes.Array[ctypes.c_ulong]:
        mask = (ctypes.c_ulong * self._WORDS)()
        self._call(signal.SIG_BLOCK, None, mask)  # adds nothing: reads the mask
        return mask

    def block(self) -> None:
        self._call(signal.SIG_BLOCK, self.held, None)

    def restore(self, mask: ctypes.Array[ctypes.c_ulong]) -> None:
        self._call(signal.SIG_SETMASK, mask, None)

    def _call(self, how: int, new: object, old: object) -> None:
        error = self._sigmask(how, new, old)
        if error:
            raise OSError(error, os.strerror(error))


_MASKS: list[_Masks | None] = []


def _masks() -> _Masks | None:
    if not _MASKS:
        usable = sys.platform == "linux" and bool(_ASYNC_SIGNALS)
        try:
            _MASKS.append(_Masks() if usable else None)
        except (AttributeError, OSError, TypeError):
            _MASKS.append(None)
    return _MASKS[0]


SignalMask = Any
"""What :func:`signal_mask` returns: the mask to restore, or None."""


def signal_mask() -> SignalMask:
    """The main thread's signal mask, to give :func:`hold_signals` and then :func:`release_signals`;
    None on other threads (they never run Python signal handlers)."""
    if threading.get_ident() != threading.main_thread().ident:
        return None
    masks = _masks()
    if masks is not None:
        return masks.current()
    return signal.pthread_sigmask(signal.SIG_BLOCK, ()) if _ASYNC_SIGNALS else None


def hold_signals(mask: SignalMask) -> None:
    """Hold asynchronous signals while wasm runs. A Python signal handler runs at the next bytecode
    boundary; one that raises (Ctrl-C's ``KeyboardInterrupt``) at the first one of a host callback
    would escape the C callback before its ``try``, leaving wasmtime an undefined trap pointer. Held,
    the signal is handled once :func:`release_signals` restores ``mask`` (call it in a ``finally``:
    the mask is read before, so an exception at any point leaves nothing held). A signal sent to the
    whole process may be taken by another thread, which holds nothing, and its Python handler then
    runs on the main thread at its next check: with threads, only handlers that do not raise are safe
    (the agent's set a flag)."""
    if mask is None:
        return
    masks = _masks()
    if masks is not None:
        masks.block()
    else:
        signal.pthread_sigmask(signal.SIG_BLOCK, _ASYNC_SIGNALS)
    _checkpoint()  # a signal that arrived before the block has its handler run here, not in wasm


def _checkpoint() -> None:
    """Nothing: entering a Python function runs the signal handlers that are pending."""


def release_signals(mask: SignalMask) -> None:
    """Restore ``mask`` (from :func:`signal_mask`); a signal held meanwhile is delivered now."""
    if mask is None:
        return
    masks = _masks()
    if masks is not None:
        masks.restore(mask)
    else:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
