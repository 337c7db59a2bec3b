"""A private on-disk cache of compiled wasm modules, so that a process start does not pay for compiling
the policy (about 0.3-0.5 s with Cranelift) but only for loading the machine code (about 1 ms).

Deserialising a compiled module runs machine code that wasmtime trusts blindly, so the cache only ever
reads what this user wrote:

- The directory (``$PYAGENT_CACHE_DIR``, else ``$XDG_CACHE_HOME/pyagent``, else ``~/.cache/pyagent``;
  then ``wasm/``) is created 0700 and must be a real directory (not a symlink) owned by this user with
  no group or other permissions, checked on the open directory handle; entries are opened relative to
  that handle with ``O_NOFOLLOW`` and must be regular files owned by this user, writable by no one else.
  Anything else and the cache is not used (the module is compiled as if there were no cache).
- Each entry records the length and the CRC-32 of the serialised module in its header; an entry whose
  bytes do not match (truncated, corrupted) is ignored and rewritten (a check against damage, not
  against an adversary: whoever can write an entry in this private directory can write its header).
  Wasmtime then checks its own header (its version, target and configuration) and refuses an
  incompatible artefact, which also falls back to compiling.
- Entries are keyed by the BLAKE2b-256 of the wasm bytes and the identity of the wasmtime library (path,
  size, modification time), are written to a temporary file and renamed into place (concurrent
  processes never see half an entry), and at most :data:`MAX_ENTRIES` are kept.

``PYAGENT_WASM_CACHE=0`` turns the cache off.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import mmap
import os
import stat
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import wasmtime

try:
    from _blake2 import blake2b as _blake2b
except ImportError:  # not CPython's own: hashlib has it (through OpenSSL or not)
    from hashlib import blake2b as _blake2b

__all__ = ["MAX_ENTRIES", "EntryCache", "ModuleCache", "default_cache_dir", "digest"]

T = TypeVar("T")

MAX_ENTRIES = 16
_MAGIC = b"pyagent-cwasm-3\n"
_DIGEST = 32
_LENGTH = 8
_CRC = 4


def digest(data: bytes | memoryview) -> bytes:
    """The 32-byte BLAKE2b of ``data``: the caches' keys. CPython's own BLAKE2 (``_blake2``):
    ``hashlib`` would load OpenSSL's libcrypto first, which costs a cold ``pyagent check`` more
    (2.5-3 ms) than hashing what its keys hash (about 0.5 MB, 0.6 ms)."""
    return _blake2b(data, digest_size=_DIGEST).digest()


_MAX_ENTRY_BYTES = 512 * 1024 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def default_cache_dir() -> Path | None:
    """Where compiled modules are cached, or None when the cache is turned off."""
    if os.environ.get("PYAGENT_WASM_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    root = os.environ.get("PYAGENT_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = os.path.join(xdg, "pyagent") if xdg and os.path.isabs(xdg) else None
    if not root:
        home = os.path.expanduser("~")
        if home == "~":
            return None
        root = os.path.join(home, ".cache", "pyagent")
    return Path(root) / "wasm"


#: What :func:`file_identity` says of a file it cannot look at.
UNKNOWN = b"\0unknown"


def file_identity(path: str) -> str:
    """``path`` with its size and modification time: another file there, another identity."""
    try:
        info = os.stat(path)
    except (OSError, TypeError):
        return f"{path}{UNKNOWN.decode()}"
    return f"{path}\0{info.st_size}\0{info.st_mtime_ns}"


@functools.cache
def _runtime_identity() -> bytes:
    """The wasmtime native library in use: a module compiled by another build is never looked up."""
    try:
        from wasmtime import _ffi

        return file_identity(os.path.realpath(str(_ffi.dll._name))).encode()
    except (ImportError, AttributeError):
        return b"unknown-wasmtime"


def _c_deserialize() -> tuple[Any, Any] | None:
    """wasmtime's ``wasmtime_module_deserialize`` and its module type, when this wasmtime-py exposes
    them (it does since its first releases; None otherwise)."""
    try:
        from wasmtime import _ffi

        return _ffi.wasmtime_module_deserialize, _ffi.wasmtime_module_t
    except (ImportError, AttributeError):
        return None


def _deserialize(engine: wasmtime.Engine, mapped: mmap.mmap, head: int) -> wasmtime.Module:
    """The module serialised in ``mapped`` after its ``head`` bytes of header, handed to wasmtime in
    place (``Module.deserialize`` takes bytes and copies them once more before wasmtime copies them
    into its code memory); through ``Module.deserialize`` when the C function is not exposed."""
    c_api = _c_deserialize()
    if c_api is None:
        return wasmtime.Module.deserialize(engine, mapped[head:])
    c_function, module_t = c_api
    size = len(mapped) - head
    buffer = (ctypes.c_uint8 * size).from_buffer(mapped, head)
    try:
        ptr = ctypes.POINTER(module_t)()
        error = c_function(engine.ptr(), buffer, size, ctypes.byref(ptr))
    finally:
        del buffer  # the mapping cannot be closed while a ctypes array exports it
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    return wasmtime.Module._from_ptr(ptr)


class EntryCache:
    """Private entries on disk, each ``magic``, the length and CRC-32 of its payload, then the
    payload, named by a key and ``suffix``, under the rules of this module. Every failure means
    "build it"."""

    magic: ClassVar[bytes]
    suffix: ClassVar[str]

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        #: What this instance did: values loaded from the cache, built, and written to it.
        self.hits = self.misses = self.stores = 0

    @classmethod
    def default(cls) -> Self | None:
        """The cache at :func:`default_cache_dir`, or None when it is turned off."""
        directory = default_cache_dir()
        return None if directory is None else cls(directory)

    @property
    def head(self) -> int:
        """The bytes of an entry before its payload."""
        return len(self.magic) + _LENGTH + _CRC

    def framed(self, payload: bytes) -> bytes:
        """The entry of ``payload``: its header, then the payload."""
        check = len(payload).to_bytes(_LENGTH, "big") + zlib.crc32(payload).to_bytes(_CRC, "big")
        return self.magic + check + payload

    def lookup(self, key: str, decode: Callable[[mmap.mmap], T | None]) -> T | None:
        """The entry of ``key`` decoded; None when there is none, or it is unsafe, damaged, or
        ``decode`` finds it unusable (counted as a hit or a miss)."""
        dir_fd = self._open_dir()
        try:
            value = None if dir_fd is None else self._decoded(dir_fd, key + self.suffix, decode)
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        self._count(value)
        return value

    def store(self, key: str, payload: bytes) -> bool:
        """Write ``payload`` as the entry of ``key`` (atomically); False when the cache is unusable."""
        dir_fd = self._open_dir()
        if dir_fd is None:
            return False
        try:
            stored = self._store(dir_fd, key + self.suffix, payload)
        finally:
            os.close(dir_fd)
        self.stores += stored
        return stored

    def _get(
        self,
        key: str,
        decode: Callable[[mmap.mmap], T | None],
        build: Callable[[], T],
        encode: Callable[[T], bytes | None],
    ) -> T:
        """The entry of ``key`` decoded (None from ``decode``: unusable), else ``build()``, stored as
        ``encode`` gives it (None: not stored; not encoded at all when the cache is unusable)."""
        name = key + self.suffix
        dir_fd = self._open_dir()
        try:
            value = None if dir_fd is None else self._decoded(dir_fd, name, decode)
            self._count(value)
            if value is None:
                value = build()
                payload = None if dir_fd is None else encode(value)
                if dir_fd is not None and payload is not None:
                    self.stores += self._store(dir_fd, name, payload)
            return value
        finally:
            if dir_fd is not None:
                os.close(dir_fd)

    def _decoded(self, dir_fd: int, name: str, decode: Callable[[mmap.mmap], T | None]) -> T | None:
        mapped = self._mapped(dir_fd, name)
        if mapped is None:
            return None
        try:
            return decode(mapped)
        finally:
            mapped.close()

    def _count(self, value: object) -> None:
        if value is None:
            self.misses += 1
        else:
            self.hits += 1

    # ------------------------------------------------------------------ directory

    def _open_dir(self) -> int | None:
        """A handle on the private cache directory (created 0700 if missing); None if unsafe."""
        try:
            self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.directory, 0o700)
            fd = os.open(self.directory, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
        except OSError:
            os.close(fd)
            return None
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
            os.close(fd)
            return None
        return fd

    # ------------------------------------------------------------------ entries

    def _mapped(self, dir_fd: int, name: str) -> mmap.mmap | None:
        """The entry ``name``, mapped, when it is safe to use and intact (the caller closes it)."""
        try:
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if (
                not stat.S_ISREG(info.st_mode)
                or info.st_uid != os.getuid()
                or stat.S_IMODE(info.st_mode) & 0o022
                or info.st_size > _MAX_ENTRY_BYTES
                or info.st_size <= self.head
            ):
                return None
            # Mapped, not read: hashed and decoded without a copy. Private and copy-on-write, so
            # nothing can reach the file through it. Entries are never rewritten in place (a new one
            # is renamed over the name), so the mapped file keeps its size.
            mapped = mmap.mmap(fd, info.st_size, access=mmap.ACCESS_COPY)
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        magic, head = self.magic, self.head
        length = int.from_bytes(mapped[len(magic) : len(magic) + _LENGTH], "big")
        if mapped[: len(magic)] == magic and length == len(mapped) - head:
            with memoryview(mapped) as view:
                if zlib.crc32(view[head:]).to_bytes(_CRC, "big") == mapped[head - _CRC : head]:
                    return mapped
        mapped.close()
        return None

    def _store(self, dir_fd: int, name: str, payload: bytes) -> bool:
        temp = f".{name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
        try:
            fd = os.open(
                temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=dir_fd
            )
        except OSError:
            return False
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self.framed(payload))
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            return False
        self._prune(dir_fd, keep=name)
        return True

    def _prune(self, dir_fd: int, keep: str) -> None:
        """Keep the newest :data:`MAX_ENTRIES` entries of this suffix (``keep`` among them); drop
        temporary files that a crashed writer left behind (older than an hour)."""
        try:
            names = os.listdir(dir_fd)
        except OSError:
            return
        entries: list[tuple[int, str]] = []
        stale = time.time_ns() - 3600 * 10**9
        for entry in names:
            if entry == keep or not entry.endswith((self.suffix, ".tmp")):
                continue
            try:
                info = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue
            if entry.endswith(self.suffix):
                entries.append((info.st_mtime_ns, entry))
            elif info.st_mtime_ns < stale:
                with contextlib.suppress(OSError):
                    os.unlink(entry, dir_fd=dir_fd)
        entries.sort(reverse=True)
        for _, entry in entries[MAX_ENTRIES - 1 :]:
            with contextlib.suppress(OSError):
                os.unlink(entry, dir_fd=dir_fd)


class ModuleCache(EntryCache):
    """Compiled modules on disk, keyed by the wasm bytes. Every failure means "compile it"."""

    magic = _MAGIC
    suffix = ".cwasm"

    def key(self, wasm: bytes) -> str:
        return digest(_MAGIC + _runtime_identity() + b"\0" + wasm).hex()

    def load_or_compile(self, engine: wasmtime.Engine, wasm: bytes) -> wasmtime.Module:
        """The compiled module for ``wasm``: from the cache when a valid entry exists, else compiled
        (and stored). Compilation errors propagate as ``wasmtime.WasmtimeError``."""

        def decode(mapped: mmap.mmap) -> wasmtime.Module | None:
            try:
                return _deserialize(engine, mapped, self.head)
            except (wasmtime.WasmtimeError, TypeError, ValueError):
                return None

        def encode(module: wasmtime.Module) -> bytes | None:
            try:
                return bytes(module.serialize())
            except wasmtime.WasmtimeError:
                return None

        return self._get(self.key(wasm), decode, lambda: wasmtime.Module(engine, wasm), encode)
