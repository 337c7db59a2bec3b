"""A private on-disk cache of what a bundle archive holds once read and checked
(:func:`~pyagent.engines.wasm.bundle.read_members`), so that a process start neither inflates and
parses the ``tar.gz`` again nor imports ``tarfile`` (about 8 ms of a cold ``pyagent check``).

Entries follow the rules of :mod:`.modcache` (a private directory owned by this user, entries opened
without following links, the length and CRC-32 of each payload in its header, atomic writes, at most
:data:`~pyagent.engines.wasm.modcache.MAX_ENTRIES` kept) in the same directory, as ``*.members``;
``PYAGENT_WASM_CACHE=0`` turns both off.

An entry is keyed by the BLAKE2b-256 of the archive's bytes, the limits it was read under, the Python
version and the identity (path, size, modification time) of the modules that read and check archives:
a change to any of them reads the archive afresh. Only an archive that passed every check is stored,
so one that fails them fails on every read, with the same error. What is stored is exactly the
members' names and bytes; the manifest, the data and the wasm are made from them as for an archive
read afresh (:func:`~pyagent.engines.wasm.bundle.bundle_from_members`).
"""

from __future__ import annotations

import functools
import mmap
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pyagent.engines.wasm.modcache import UNKNOWN, EntryCache, digest, file_identity

if TYPE_CHECKING:
    from pyagent.engines.wasm.bundle import BundleLimits

__all__ = ["MembersCache"]

_NAME_BYTES = 4
_SIZE_BYTES = 8


def code_identity(paths: Sequence[str]) -> bytes:
    """The identity of the source files ``paths`` (:func:`file_identity`), for a key: an entry made
    under other code is never found, and none is made where a file cannot be looked at."""
    return "\0".join(map(file_identity, paths)).encode()


@functools.cache
def _code_identity() -> bytes:
    """The Python and the modules that read and check an archive: another of either, another key."""
    from pyagent.engines.wasm import bundle

    here = os.path.dirname(bundle.__file__)
    paths = (bundle.__file__, os.path.join(here, "tarscan.py"))  # tarscan: not imported for this
    return sys.version.encode() + b"\0" + code_identity(paths)


def encode_members(files: Mapping[str, bytes]) -> bytes:
    """``files`` as one payload: for each, the length of its UTF-8 name, the name, its size, its bytes."""
    out = bytearray()
    for name, content in files.items():
        encoded = name.encode("utf-8", "surrogateescape")  # tarfile's own decoding of names
        out += len(encoded).to_bytes(_NAME_BYTES, "big") + encoded
        out += len(content).to_bytes(_SIZE_BYTES, "big") + content
    return bytes(out)


def decode_members(payload: bytes | mmap.mmap, start: int = 0) -> dict[str, bytes] | None:
    """The files of :func:`encode_members` from ``payload[start:]``; None if it is not such a payload."""
    files: dict[str, bytes] = {}
    end, at = len(payload), start
    while at < end:
        if at + _NAME_BYTES > end:
            return None
        size = int.from_bytes(payload[at : at + _NAME_BYTES], "big")
        at += _NAME_BYTES
        if at + size + _SIZE_BYTES > end:
            return None
        name = payload[at : at + size].decode("utf-8", "surrogateescape")
        at += size
        size = int.from_bytes(payload[at : at + _SIZE_BYTES], "big")
        at += _SIZE_BYTES
        if at + size > end or name in files:
            return None
        files[name] = payload[at : at + size]
        at += size
    return files


class MembersCache(EntryCache):
    """The members of checked bundle archives, keyed by their bytes. Every failure means "read it"."""

    magic = b"pyagent-members-2\n"
    suffix = ".members"

    def key(self, raw: bytes, limits: BundleLimits, context: bytes = b"") -> str | None:
        """The entry's key; None where the code's identity is unknown (a module whose file cannot be
        looked at, e.g. inside a zip): an entry would then outlive a change of that code."""
        identity = _code_identity() + b"\0" + repr(limits).encode() + b"\0" + context
        if UNKNOWN in identity:
            return None
        return digest(self.magic + identity + b"\0" + raw).hex()

    def find(self, raw: bytes, limits: BundleLimits, context: bytes = b"") -> dict[str, bytes] | None:
        """The members stored for the archive ``raw`` (read under ``limits``, in ``context``: what
        else the caller checked them with), or None."""
        key = self.key(raw, limits, context)
        return None if key is None else self.lookup(key, lambda mapped: decode_members(mapped, self.head))

    def keep(
        self, raw: bytes, limits: BundleLimits, members: Mapping[str, bytes], context: bytes = b""
    ) -> None:
        """Store ``members``, which :func:`~pyagent.engines.wasm.bundle.read_members` read from the
        archive ``raw`` under ``limits``, and which passed the caller's checks (``context``)."""
        key = self.key(raw, limits, context)
        if key is not None:
            self.store(key, encode_members(members))
