"""A streaming pre-scan of a ``.tar.gz`` under budgets, before :mod:`tarfile` buffers anything.

Python's ``tarfile`` reads a pax or GNU long-name header whole into memory, and a bundle's members are
kept in memory once read: a gzip bomb or a 900 MiB pax header costs gigabytes before any check. This
scan inflates the archive in 64 KiB steps (every gzip member, as ``gzip`` reads them), parses each
512-byte tar header as it arrives and skips the data, holding at most one header and one chunk. It
refuses, before anything is buffered:

* more decompressed bytes than the budget (the members' total, plus their headers and padding);
* a member whose header says it is larger than a member may be, or that takes the members' total
  over its bound (refused at the header, as OPA's reader refuses a file over ``size_limit_bytes``,
  rather than after inflating up to the budget);
* more members than allowed;
* a pax (``x``, ``g``, Solaris ``X``) or GNU long-name (``L``, ``K``) header over its size bound;
* an old-GNU sparse member (type ``S``): tarfile reads every one of its extension blocks into a list
  of maps before it hands the member back (a 0.5 MB bundle took 767 MB), and one that is cut short
  raised an ``IndexError``;
* a pax header that sets a member's ``size`` or describes a sparse file (``GNU.sparse.*``): tarfile
  would read the member at that size where this scan reads the header's, and the two would part ways
  (a member of size 0 whose "data" is a zero block read here as the archive's end). No bundle needs
  them: ``opa build`` writes a pax size only past 8 GiB;
* a header whose size field or checksum is not a tar header's.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from pyagent.termsafe import printable

BLOCK = 512
CHUNK = 64 * 1024
_EXTENSIONS = {
    b"x": "pax header",
    b"X": "pax header",
    b"g": "global pax header",
    b"L": "GNU long name",
    b"K": "GNU long link name",
}


class ScanRefused(Exception):
    """The archive is over a budget or not a tar.gz; the message says which (without the bundle's name)."""


@dataclass(frozen=True)
class Budget:
    max_decompressed: int
    max_members: int
    max_header_bytes: int
    max_member_bytes: int
    max_total_bytes: int


def scan(raw: bytes, budget: Budget) -> None:
    """Raise :class:`ScanRefused` when ``raw`` (a ``.tar.gz``) breaks ``budget``; memory stays O(CHUNK)."""
    state = _Scan(budget)
    for chunk in _inflate(raw):
        if state.feed(chunk):
            return


def _inflate(raw: bytes) -> Iterator[bytes]:
    """The decompressed bytes of every gzip member of ``raw``, at most CHUNK at a time."""
    view = memoryview(raw)
    offset = 0
    while offset < len(view):
        if bytes(view[offset : offset + 2]) != b"\x1f\x8b":
            if offset == 0:
                raise ScanRefused("not a readable tar.gz: not a gzip file")
            return  # trailing bytes after the last member: gzip's own reader decides about them
        inflater = zlib.decompressobj(31)
        while not inflater.eof:
            if offset >= len(view):
                raise ScanRefused("not a readable tar.gz: the gzip stream is cut short")
            piece = view[offset : offset + CHUNK]
            offset += len(piece)
            try:
                out = inflater.decompress(piece, CHUNK)
                while True:
                    if out:
                        yield out
                    tail = inflater.unconsumed_tail
                    if not tail or inflater.eof:
                        break
                    out = inflater.decompress(tail, CHUNK)
            except zlib.error as err:
                raise ScanRefused(f"not a readable tar.gz: bad gzip stream ({err})") from err
        offset -= len(inflater.unused_data)


class _Scan:
    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.header = bytearray()
        self.skip = 0
        self.total = 0
        self.members = 0
        self.declared = 0
        """The members' sizes as their headers give them, so far."""
        self.pax_left = 0
        """Bytes of a pax header's records still to read (they are bounded: kept, then checked)."""
        self.pax = bytearray()

    def feed(self, data: bytes) -> bool:
        """Consume ``data``; True once the end-of-archive block is reached."""
        self.total += len(data)
        if self.total > self.budget.max_decompressed:
            raise ScanRefused(f"over {self.budget.max_decompressed} bytes once decompressed")
        pos = 0
        while pos < len(data):
            if self.skip:
                step = min(self.skip, len(data) - pos)
                if self.pax_left:  # a pax header's records come first, then its padding
                    records = min(step, self.pax_left)
                    self.pax += data[pos : pos + records]
                    self.pax_left -= records
                    if not self.pax_left:
                        _check_pax(bytes(self.pax))
                self.skip -= step
                pos += step
                continue
            take = data[pos : pos + BLOCK - len(self.header)]
            self.header += take
            pos += len(take)
            if len(self.header) == BLOCK:
                block = bytes(self.header)
                self.header.clear()
                if not any(block):
                    return True  # end of archive: tarfile stops here too
                self._header(block)
        return False

    def _header(self, block: bytes) -> None:
        if not _checksum_ok(block):
            raise ScanRefused(
                f"not a readable tar.gz: a tar header's checksum is wrong (after {self.members} members)"
            )
        size = _size(block[124:136])
        kind = block[156:157]
        if kind in _EXTENSIONS:
            if size > self.budget.max_header_bytes:
                raise ScanRefused(
                    f"a {_EXTENSIONS[kind]} of {size} bytes, over the bound of {self.budget.max_header_bytes}"
                )
            if kind in (b"x", b"X", b"g"):
                self.pax_left, self.pax = size, bytearray()
        elif kind == b"S":  # tarfile reads all of an old-GNU sparse member's maps before its checks
            raise ScanRefused(f"member {_name(block)}: a GNU sparse file (type S): not in a policy bundle")
        else:
            self.members += 1
            if self.members > self.budget.max_members:
                raise ScanRefused(f"more than {self.budget.max_members} members")
            self.declared += size
            if size > self.budget.max_member_bytes:
                raise ScanRefused(f"member {_name(block)}: {size} bytes, over {self.budget.max_member_bytes}")
            if self.declared > self.budget.max_total_bytes:
                raise ScanRefused(f"member {_name(block)}: members total over the bound")
        self.skip = -(-size // BLOCK) * BLOCK


def _check_pax(records: bytes) -> None:
    """Refuse pax records that set a size or describe a sparse file, or that are not pax records."""
    at = 0
    while at < len(records):
        space = records.find(b" ", at, at + 20)
        try:
            length = int(records[at:space]) if space > at else 0
        except ValueError:
            length = 0
        record = records[at : at + length]
        if length <= space - at or len(record) < length or not record.endswith(b"\n") or b"=" not in record:
            raise ScanRefused("not a readable tar.gz: a pax header that is not pax records")
        key = record[space - at + 1 : record.index(b"=")]
        if key == b"size" or key.startswith(b"GNU.sparse."):
            shown = printable(record[space - at + 1 : 80].rstrip(b"\n").decode("utf-8", "replace"))
            raise ScanRefused(f"a pax header sets {shown}: not in a policy bundle")
        at += length


def _name(block: bytes) -> str:
    """A header's name as the sender wrote it (a ustar prefix joined), shortened and made printable:
    a pax header may rename the member, and tarfile's cleaned name is not known yet."""
    name = block[0:100].split(b"\0", 1)[0]
    if block[257:263] == b"ustar\0" and block[345] != 0:  # POSIX ustar's prefix (GNU keeps times there)
        name = block[345:500].split(b"\0", 1)[0] + b"/" + name
    text = name.decode("utf-8", errors="replace")
    text = text[1:] if text.startswith("/") else text[2:] if text.startswith("./") else text  # as OPA writes
    return printable(text[:60] + ("..." if len(text) > 60 else ""))


def _size(field: bytes) -> int:
    if field[0] & 0x80:  # base-256 (GNU): a negative size is refused
        if field[0] == 0xFF:
            raise ScanRefused("not a readable tar.gz: a tar header has a negative size")
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.replace(b"\x00", b" ").strip()
    try:
        return int(text, 8) if text else 0
    except ValueError as err:
        raise ScanRefused("not a readable tar.gz: a tar header's size is not a number") from err


def _checksum_ok(block: bytes) -> bool:
    text = block[148:156].replace(b"\x00", b" ").strip()
    try:
        stored = int(text, 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    signed = sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 8 * 32
    return stored in (unsigned, signed)
