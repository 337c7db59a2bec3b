"""Structure-aware fuzzing of the bundle reader: tar streams built header by header (regular files,
directories, links, pax and GNU long-name headers, lying sizes, bad checksums, odd names), wrapped in
gzip whole, split into members, cut short or followed by garbage. Whatever the input: no traceback,
only a refusal (:class:`BundleError`) or a bundle, and memory under a bound set by the limits."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

from hypothesis import given
from hypothesis import strategies as st

from pyagent.engines.wasm.bundle import BundleError, BundleLimits, bundle_from_members, read_members
from tests.helpers.fuzz import FUZZ

LIMITS = BundleLimits(
    max_archive_bytes=4 << 20,
    max_member_bytes=256 << 10,
    max_total_bytes=1 << 20,
    max_members=50,
    max_header_bytes=4 << 10,
    max_path_chars=200,
)
#: Bytes the reader may allocate at its peak: the archive, what the limits let through, and slack.
MEMORY_BOUND = 16 << 20

KINDS = [b"0", b"\0", b"5", b"1", b"2", b"x", b"g", b"L", b"K", b"S", b"3", b"7", b"Z"]
NAMES = st.one_of(
    st.sampled_from(
        [
            "policy.wasm",
            "/policy.wasm",
            "data.json",
            ".manifest",
            "a/data.json",
            "./x",
            "../x",
            "a//b",
            "",
            ".",
        ]
    ),
    st.text(st.characters(codec="utf-8"), max_size=120),
)


def _header(name: bytes, size_field: bytes, kind: bytes, corrupt: bool) -> bytes:
    block = bytearray(512)
    block[0:100] = name[:100].ljust(100, b"\0")
    block[100:108] = b"0000644\0"
    block[108:124] = b"0000000\0" * 2
    block[124:136] = size_field[:12].ljust(12, b"\0")
    block[136:148] = b"00000000000\0"
    block[148:156] = b" " * 8
    block[156:157] = kind
    block[257:265] = b"ustar\x0000"
    checksum = sum(block) + (1 if corrupt else 0)
    block[148:156] = f"{checksum:06o}\0 ".encode()
    return bytes(block)


@st.composite
def entries(draw: st.DrawFn) -> bytes:
    """A tar stream: headers whose declared sizes may lie about the data that follows them."""
    out = bytearray()
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(KINDS))
        data = draw(st.binary(max_size=3000))
        if kind in (b"x", b"g") and draw(st.booleans()):
            record = draw(st.sampled_from(["path", "size", "linkpath", "uid", "comment"]))
            value = draw(NAMES | st.integers(-5, 10**12).map(str))
            body = f" {record}={value}\n"
            data = f"{len(body) + len(str(len(body))) + 1}{body}".encode()
        declared = draw(st.one_of(st.just(len(data)), st.integers(0, 10**11)))
        size_field = draw(
            st.one_of(
                st.just(f"{declared:011o}\0".encode()),
                st.just(b"\x80" + declared.to_bytes(11, "big")),
                st.binary(min_size=12, max_size=12),
            )
        )
        name = draw(NAMES).encode("utf-8", "surrogatepass")
        out += _header(name, size_field, kind, draw(st.booleans()) and draw(st.booleans()))
        out += data + b"\0" * (-len(data) % 512)
    if draw(st.booleans()):
        out += b"\0" * 1024
    return bytes(out)


@st.composite
def archives(draw: st.DrawFn) -> bytes:
    """The tar stream, gzipped whole or in members, possibly cut short or with trailing bytes."""
    tar = draw(entries())
    way = draw(st.sampled_from(["whole", "members", "raw", "bomb"]))
    if way == "raw":
        raw = tar
    elif way == "members":
        cuts = sorted(draw(st.lists(st.integers(0, max(len(tar), 1)), max_size=5)))
        pieces = [tar[a:b] for a, b in zip([0, *cuts], [*cuts, len(tar)], strict=True)]
        raw = b"".join(gzip.compress(p) for p in pieces)
    elif way == "bomb":  # a header declaring much, then zeros well past every bound
        raw = gzip.compress(tar) + b"".join(gzip.compress(b"\0" * (256 << 10)) for _ in range(12))
    else:
        raw = zlib.compress(tar, wbits=31) if tar else gzip.compress(b"")
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    if draw(st.booleans()):
        raw += draw(st.binary(max_size=40))
    return raw


@FUZZ
@given(raw=archives())
def test_fuzz_bundle_reader_refuses_or_reads_within_memory(raw: bytes) -> None:
    tracemalloc.start()
    try:
        try:
            files = read_members(raw, label="fuzzed", limits=LIMITS)
        except BundleError as err:
            assert str(err).startswith("bundle fuzzed: ")
            files = None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, peak
    if files is not None:
        assert len(files) <= LIMITS.max_members
        assert sum(map(len, files.values())) <= LIMITS.max_total_bytes
        try:
            bundle_from_members(files, label="fuzzed")
        except BundleError as err:
            assert str(err).startswith("bundle fuzzed: ")
