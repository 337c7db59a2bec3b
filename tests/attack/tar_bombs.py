"""Tar-in-gzip bombs made by hand: ustar headers that claim any size or kind, and a gzip stream of one
member per MiB of zeros, so a file of a few MB inflates to gigabytes."""

from __future__ import annotations

import gzip
import io

MIB = 1024 * 1024
ZEROS_MIB = gzip.compress(b"\0" * MIB, 9)  # one gzip member; gzip readers chain members


def header(name: str, size: int, kind: bytes) -> bytes:
    """One ustar header block, with its checksum."""
    block = bytearray(512)
    block[0:100] = name.encode().ljust(100, b"\0")
    block[100:108] = b"0000644\0"
    block[108:116] = block[116:124] = b"0000000\0"
    block[124:136] = f"{size:011o}\0".encode()
    block[136:148] = b"00000000000\0"
    block[148:156] = b" " * 8
    block[156:157] = kind
    block[257:265] = b"ustar\x0000"
    block[148:156] = f"{sum(block):06o}\0 ".encode()
    return bytes(block)


def bomb(parts: list[tuple[str, int, bytes]]) -> bytes:
    """A multi-member gzip: each header compressed alone, each MiB of its (zero) data one member."""
    out = io.BytesIO()
    for name, size, kind in parts:
        out.write(gzip.compress(header(name, size, kind)))
        for _ in range(-(-size // MIB)):
            out.write(ZEROS_MIB)
    out.write(gzip.compress(b"\0" * 1024))
    return out.getvalue()


def sparse(name: str, extension_blocks: int, *, ended: bool = True) -> bytes:
    """An old-GNU sparse member (type S) whose header says more sparse maps follow, then that many
    extension blocks of 21 maps each (the last says none follows, unless not ``ended``: the archive
    stops where another is promised), gzip-compressed: tarfile reads every map into memory before it
    hands the member back."""
    block = bytearray(header(name, 512 * extension_blocks, b"S"))
    block[257:265] = b"ustar  \0"  # (old GNU's magic)
    block[482] = 1  # isextended
    block[148:156] = b" " * 8
    block[148:156] = f"{sum(block):06o}\0 ".encode()
    maps = b"00000000777\0" * 42
    more, last = maps[:504] + b"\1" + bytes(7), maps[:504] + bytes(8)
    body = bytes(block) + more * (extension_blocks - 1) + (last if ended else more)
    return gzip.compress(body + (b"\0" * 1024 if ended else b""), 9)
