"""Evaluate an OPA policy compiled to WebAssembly (``opa build -t wasm``) in-process, with wasmtime.

The module speaks OPA's wasm ABI 1.x (minor >= 2): data is parsed into the module's memory once
(:meth:`WasmPolicy.set_data`); each :meth:`WasmPolicy.evaluate` writes the input JSON just above the
data, calls the one-shot ``opa_eval`` export with the heap pointer just above the input (so every
evaluation reuses the same memory and nothing grows), and decodes the result set it returns into the
JSON OPA itself would answer (sets as sorted arrays, sorted keys; see ``values.py``).

Built-ins the module does not carry are served by :data:`~pyagent.engines.wasm.builtins.HOST_BUILTINS`
(``hostcalls.py``, which memoises their results by operand text); a module that needs any other is
refused when loaded (:class:`MissingBuiltinError`). A host built-in error makes its expression undefined,
as in OPA's default (non-strict) evaluation; with ``strict_builtin_errors=True`` it fails the evaluation
instead, as ``opa eval --strict-builtin-errors`` and OPA's own wasm SDKs do.

Speed: the compiled module comes from a private on-disk cache when it can (``modcache.py``); exports are
called through wasmtime's C API directly rather than ``wasmtime.Func.__call__``, and the module calls
the host built-ins the same way (``fastcall.py``).

Thread safety: a :class:`WasmPolicy` is NOT thread-safe. It owns one wasmtime store and instance whose
memory every call mutates; use one per thread (or process), or serialise the calls yourself.
"""

from __future__ import annotations

import ctypes
import functools
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import wasmtime

from pyagent.engines.encode import encode_json
from pyagent.engines.wasm.builtins import HOST_BUILTINS, HostBuiltin
from pyagent.engines.wasm.deadline import deadline_timer, engine_for
from pyagent.engines.wasm.errors import (
    BuiltinEvalError,
    MissingBuiltinError,
    PolicyAbortError,
    UndefinedResultError,
    UnknownEntrypointError,
    WasmRuntimeError,
    first_line,
    trap_text,
)
from pyagent.engines.wasm.fastcall import (
    RawImport,
    hold_signals,
    raw_func,
    raw_import,
    release_signals,
    signal_mask,
)
from pyagent.engines.wasm.hostcalls import HostCalls
from pyagent.engines.wasm.modcache import ModuleCache
from pyagent.engines.wasm.values import RegoValueError, decode_result_set

__all__ = [
    "NO_INPUT",
    "BuiltinEvalError",
    "MissingBuiltinError",
    "PolicyAbortError",
    "UndefinedResultError",
    "UnknownEntrypointError",
    "WasmPolicy",
    "WasmRuntimeError",
]

_PAGE = 65_536
_VALUE_FORMAT = 1  # opa_eval output as Rego values: keeps sets and non-string keys (see values.py)
_DEFAULT_INITIAL_PAGES = 5
_BUILTIN_ARITIES = 5  # the ABI's env.opa_builtin0 ... opa_builtin4
_NUL = re.compile(b"\x00")
_I32 = wasmtime.ValType.i32()

NO_INPUT: Any = object()
"""``WasmPolicy.evaluate``'s default: no input document at all (``input`` undefined)."""

#: An exported function, called with its i32 arguments only (bound to the policy's store).
WasmFunc = Callable[..., Any]


@dataclass(frozen=True, eq=False, repr=False)  # private: no comparing nor printing (0.3 ms less to create)
class _Exports:
    memory: wasmtime.Memory
    malloc: WasmFunc
    free: WasmFunc
    json_parse: WasmFunc
    json_dump: WasmFunc
    value_dump: WasmFunc
    heap_ptr_get: WasmFunc
    heap_ptr_set: WasmFunc
    eval: WasmFunc
    stash: WasmFunc | None
    stash_clear: WasmFunc | None


@dataclass(eq=False, repr=False)
class _MemoryView:
    """A cached zero-copy view of the linear memory; rebuilt when the memory moves or grows."""

    base: int = -1
    size: int = -1
    view: memoryview = field(default_factory=lambda: memoryview(b""))


def _optional_func(store: wasmtime.Store, exports: Mapping[str, Any], name: str) -> WasmFunc | None:
    value = exports.get(name)
    if not isinstance(value, wasmtime.Func):
        return None
    fast = raw_func(store, value)  # the C API directly, when the types allow (see fastcall.py)
    return fast if fast is not None else functools.partial(value, store)


def _global(store: wasmtime.Store, exports: Mapping[str, Any], name: str) -> int:
    value = exports.get(name)
    if not isinstance(value, wasmtime.Global):
        raise WasmRuntimeError(f"policy.wasm lacks the global {name!r}: not an OPA wasm module")
    return int(value.value(store))


def _func(store: wasmtime.Store, exports: Mapping[str, Any], name: str) -> WasmFunc:
    value = _optional_func(store, exports, name)
    if value is None:
        raise WasmRuntimeError(f"policy.wasm lacks the export {name!r}: not an OPA wasm module")
    return value


class WasmPolicy:
    """One compiled policy, instantiated once, evaluated many times (not thread-safe; see module doc)."""

    def __init__(
        self,
        wasm_bytes: bytes,
        *,
        host_builtins: Mapping[str, HostBuiltin] = HOST_BUILTINS,
        strict_builtin_errors: bool = False,
        initial_memory_pages: int = _DEFAULT_INITIAL_PAGES,
        max_memory_pages: int | None = None,
        print_hook: Callable[[str], None] | None = None,
        module_cache: ModuleCache | Literal[False] | None = None,
        load_seconds: float | None = None,
    ) -> None:
        """``module_cache``: where compiled modules are kept between processes (see ``modcache.py``);
        None for the default (``$XDG_CACHE_HOME/pyagent/wasm``, off with ``PYAGENT_WASM_CACHE=0``),
        False for none. ``load_seconds``: a bound on the module's own code while it loads (its start
        function, its ``builtins`` and ``entrypoints`` exports), for a module no key vouches for yet."""
        self._print = print_hook or (lambda line: print(line, file=sys.stderr))
        if not wasm_bytes.startswith(b"\0asm"):  # (wasmtime would compile the text format too)
            raise WasmRuntimeError("policy.wasm is not a wasm module: it does not start with \\0asm")
        self._engine = engine_for(load_seconds)
        cache = ModuleCache.default() if module_cache is None else module_cache or None
        try:
            if cache is None:
                module = wasmtime.Module(self._engine, wasm_bytes)
            else:
                module = cache.load_or_compile(self._engine, wasm_bytes)
        except wasmtime.WasmtimeError as err:
            raise WasmRuntimeError(f"policy.wasm is not a valid wasm module: {first_line(err)}") from err
        self._module = module
        self._store = wasmtime.Store(self._engine)
        if max_memory_pages is not None:  # every memory of the store: one of the module's own as well
            self._store.set_limits(memory_size=max_memory_pages * _PAGE, memories=1)
        self._memory_limits = (initial_memory_pages, max_memory_pages)
        # (the C callbacks hold this policy only through their own closures: no global table keeps it)
        self._raw_builtins = [raw_import(arity + 2, self._builtin) for arity in range(_BUILTIN_ARITIES)]
        self._raw_abort = raw_import(1, self._abort, result=False)
        self._raw_println = raw_import(1, self._println, result=False)
        timer = deadline_timer(self._engine, self._store, load_seconds)
        try:  # (every call into the module while it loads: within ``load_seconds``)
            self._ex = self._instantiate(self._store)
            self._view = _MemoryView()
            required = self._dump_json(self._call(self._builtins_fn))
            self._entrypoints: dict[str, int] = dict(self._dump_json(self._call(self._entrypoints_fn)))
            if not isinstance(required, dict):
                raise WasmRuntimeError("policy.wasm: the builtins export is not an object")
            strict = strict_builtin_errors
            self._host = HostCalls(required, host_builtins, strict=strict, print_line=self._print)
            self.required_builtins: frozenset[str] = frozenset(required)
            self._call(self._ex.malloc, 0)  # initialise the heap, as OPA's SDKs do
            self._base_heap = int(self._call(self._ex.heap_ptr_get))
            self._data_addr = 0
            self._eval_heap = self._base_heap
            self.set_data({})
        finally:
            if timer is not None:
                timer.cancel()

    # ------------------------------------------------------------------ loading

    def _instantiate(self, store: wasmtime.Store) -> _Exports:
        initial, maximum = self._memory_limits
        for imp in self._module.imports:
            if imp.module == "env" and imp.name == "memory" and isinstance(imp.type, wasmtime.MemoryType):
                initial = max(initial, imp.type.limits.min)
        if maximum is not None and initial > maximum:
            raise WasmRuntimeError(f"policy.wasm asks for {initial} pages of memory; at most {maximum}")
        linker = wasmtime.Linker(self._engine)
        memory = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(initial, maximum)))
        linker.define(store, "env", "memory", memory)
        imports: list[tuple[str, RawImport | None, list[wasmtime.ValType], list[wasmtime.ValType], WasmFunc]]
        imports = [("opa_abort", self._raw_abort, [_I32], [], self._abort)]
        imports.append(("opa_println", self._raw_println, [_I32], [], self._println))
        for arity, raw in enumerate(self._raw_builtins):  # opa_builtinN(id, ctx, N operands) -> value
            imports.append((f"opa_builtin{arity}", raw, [_I32] * (arity + 2), [_I32], self._builtin))
        for name, raw, params, results, func in imports:
            if raw is not None:
                raw.define(linker, "env", name)
            else:
                linker.define_func("env", name, wasmtime.FuncType(params, results), func)
        try:
            instance = linker.instantiate(store, self._module)
        except wasmtime.Trap as err:  # its start function trapped, or ran past a load's bound (interrupt)
            raise WasmRuntimeError(f"policy.wasm cannot be instantiated: {trap_text(err)}") from err
        except wasmtime.WasmtimeError as err:
            raise WasmRuntimeError(f"policy.wasm cannot be instantiated: {first_line(err)}") from err
        exports = instance.exports(store)
        major, minor = (_global(store, exports, f"opa_wasm_abi{part}_version") for part in ("", "_minor"))
        self.abi_version = (major, minor)
        if major != 1 or minor < 2:
            raise WasmRuntimeError(f"policy.wasm has OPA wasm ABI {major}.{minor}; 1.2 or later is needed")
        self._builtins_fn = _func(store, exports, "builtins")
        self._entrypoints_fn = _func(store, exports, "entrypoints")
        return _Exports(
            memory=memory,
            malloc=_func(store, exports, "opa_malloc"),
            free=_func(store, exports, "opa_free"),
            json_parse=_func(store, exports, "opa_json_parse"),
            json_dump=_func(store, exports, "opa_json_dump"),
            value_dump=_func(store, exports, "opa_value_dump"),
            heap_ptr_get=_func(store, exports, "opa_heap_ptr_get"),
            heap_ptr_set=_func(store, exports, "opa_heap_ptr_set"),
            eval=_func(store, exports, "opa_eval"),
            stash=_optional_func(store, exports, "opa_heap_blocks_stash"),
            stash_clear=_optional_func(store, exports, "opa_heap_stash_clear"),
        )

    # ------------------------------------------------------------------ public API

    @property
    def entrypoints(self) -> Mapping[str, int]:
        """Entrypoint name (``"pkg/rule"``) to id, as compiled into the module."""
        return dict(self._entrypoints)

    @property
    def memory_pages(self) -> int:
        """Current size of the module's linear memory, in 64 KiB pages."""
        return int(self._ex.memory.size(self._store))

    def set_data(self, data: Mapping[str, object]) -> None:
        """Parse ``data`` into the module's memory, replacing any previous data document."""
        self._load_data(encode_json(data, "policy data"))

    def _load_data(self, raw: bytes) -> None:
        self._data_raw = raw
        if self._ex.stash_clear is not None:
            self._call(self._ex.stash_clear)
        self._call(self._ex.heap_ptr_set, self._base_heap)
        addr = self._write_new(raw)
        value = int(self._call(self._ex.json_parse, addr, len(raw)))
        if value == 0:
            raise WasmRuntimeError("policy data could not be parsed by the wasm module")
        self._call(self._ex.free, addr)
        if self._ex.stash is not None:
            self._call(self._ex.stash)  # keep freed blocks out of every evaluation's reach
        self._data_addr = value
        self._eval_heap = int(self._call(self._ex.heap_ptr_get))

    def evaluate(self, input: object = NO_INPUT, entrypoint: str | int = 0) -> object:
        """The value of ``entrypoint`` (name or id) for ``input`` (any JSON-encodable value; without
        one, ``input`` is undefined, as in ``opa eval`` without ``--input``: None is JSON null).

        Raises :class:`UndefinedResultError` when the value is undefined, :class:`PolicyAbortError` when
        the policy aborts (e.g. conflicting rule values), ``InvalidInputError`` for non-JSON input.
        """
        entry = self._entrypoint_id(entrypoint)
        raw = b"" if input is NO_INPUT else encode_json(input, "input")
        addr = self._eval_heap if raw else 0  # a NULL input: the module leaves input undefined
        end = self._eval_heap + len(raw)
        memory = self._ex.memory
        if end > memory.data_len(self._store):
            self._grow_to(end)
        ctypes.memmove(self._view_of()[0] + self._eval_heap, raw, len(raw))
        mask = signal_mask()  # held while wasm may call the host (see fastcall.hold_signals)
        try:
            hold_signals(mask)
            try:
                result = self._call(
                    self._ex.eval, 0, entry, self._data_addr, addr, len(raw), end, _VALUE_FORMAT
                )
            except BaseException:
                self._reinstantiate()
                raise
        finally:
            release_signals(mask)
        try:
            defined, value = decode_result_set(self._read_cstring(int(result)))
        except (RegoValueError, UnicodeDecodeError) as err:
            raise WasmRuntimeError(f"policy.wasm returned a malformed result: {err}") from err
        if not defined:
            name = next((n for n, i in self._entrypoints.items() if i == entry), str(entry))
            raise UndefinedResultError(f"policy decision {name!r} is undefined")
        return value

    def _reinstantiate(self) -> None:
        """A fresh instance with the same data. An evaluation cut short (a trap, an abort, a strict
        built-in error) unwinds past the module's own bookkeeping (its stack pointer, its heap), so the
        old instance is not used again: thousands of such errors would otherwise exhaust its stack."""
        store = wasmtime.Store(self._engine)
        exports = self._instantiate(store)
        # both at once: an interrupt between them would pair the old exports with the new store
        self._store, self._ex, self._view = store, exports, _MemoryView()
        self._call(self._ex.malloc, 0)
        self._base_heap = int(self._call(self._ex.heap_ptr_get))
        self._load_data(self._data_raw)

    # ------------------------------------------------------------------ memory

    def _entrypoint_id(self, entrypoint: str | int) -> int:
        if isinstance(entrypoint, str):
            if entrypoint not in self._entrypoints:
                known = ", ".join(sorted(self._entrypoints))
                raise UnknownEntrypointError(f"no entrypoint {entrypoint!r} in policy.wasm (has: {known})")
            return self._entrypoints[entrypoint]
        if isinstance(entrypoint, bool) or entrypoint not in self._entrypoints.values():
            raise UnknownEntrypointError(f"no entrypoint with id {entrypoint!r} in policy.wasm")
        return entrypoint

    def _grow_to(self, end: int) -> None:
        memory = self._ex.memory
        missing = end - memory.data_len(self._store)
        try:
            memory.grow(self._store, -(-missing // _PAGE))
        except wasmtime.WasmtimeError as err:
            raise WasmRuntimeError(f"wasm memory cannot grow to {end} bytes: {first_line(err)}") from err

    def _view_of(self) -> tuple[int, memoryview]:
        memory, store = self._ex.memory, self._store
        base = ctypes.addressof(memory.data_ptr(store).contents)
        size = memory.data_len(store)
        cache = self._view
        if cache.base != base or cache.size != size:
            cache.base, cache.size = base, size
            cache.view = memoryview((ctypes.c_ubyte * size).from_address(base)).cast("B")
        return base, cache.view

    def _read_cstring(self, addr: int) -> bytes:
        """The NUL-terminated string at ``addr``, bounds-checked against the linear memory."""
        base, view = self._view_of()
        end = _NUL.search(view, addr) if 0 < addr < len(view) else None
        if end is None:
            raise WasmRuntimeError(f"policy.wasm returned an invalid string address {addr}")
        return ctypes.string_at(base + addr, end.start() - addr)

    def _write_new(self, raw: bytes) -> int:
        addr = int(self._call(self._ex.malloc, len(raw)))
        base, view = self._view_of()
        if addr <= 0 or addr + len(raw) > len(view):
            raise WasmRuntimeError(f"opa_malloc({len(raw)}) returned an invalid address {addr}")
        ctypes.memmove(base + addr, raw, len(raw))
        return addr

    def _dump_json(self, value_addr: int) -> Any:
        return json.loads(self._read_cstring(int(self._call(self._ex.json_dump, value_addr))))

    def _call(self, func: WasmFunc, *args: int) -> Any:
        try:
            return func(*args)
        except wasmtime.Trap as err:
            raise PolicyAbortError(f"policy.wasm trapped: {trap_text(err)}") from err
        except wasmtime.WasmtimeError as err:
            raise WasmRuntimeError(f"policy.wasm failed: {first_line(err)}") from err

    # ------------------------------------------------------------------ imports

    def _abort(self, addr: int) -> None:
        raise PolicyAbortError(f"policy aborted: {self._read_cstring(addr).decode('utf-8', 'replace')}")

    def _println(self, addr: int) -> None:
        self._print(self._read_cstring(addr).decode("utf-8", "replace"))

    def _builtin(self, builtin_id: int, _ctx: int, *arg_addrs: int) -> int:
        if builtin_id not in self._host:
            raise WasmRuntimeError(f"policy.wasm called an undeclared built-in (id {builtin_id})")
        texts = tuple(self._read_cstring(int(self._call(self._ex.value_dump, addr))) for addr in arg_addrs)
        raw = self._host.answer(builtin_id, texts)
        if raw is None:
            return 0  # NULL: the expression is undefined (or print(), which has no value)
        addr = self._write_new(raw)
        parsed = int(self._call(self._ex.json_parse, addr, len(raw)))
        if parsed == 0:
            raise WasmRuntimeError(
                f"{self._host.name(builtin_id)}: its result could not be parsed by the wasm module"
            )
        return parsed
