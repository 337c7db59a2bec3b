"""The cache of checked bundle members: a cached archive reads as the same bundle, an archive that fails
a check is never stored and fails alike every time, and the limits, a damaged entry or the switch
are honoured."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from pyagent.engines.base import EngineSettings
from pyagent.engines.embedded import EmbeddedEngine
from pyagent.engines.wasm import BundleError, read_bundle
from pyagent.engines.wasm.bundle import BundleLimits
from pyagent.engines.wasm.bundlecache import MembersCache, decode_members, encode_members
from tests.helpers.opa_bin import build_wasm

POLICY = """package cachedbundle

import rego.v1

allow if count(input.apps) == 0
"""


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wasm(tmp_path_factory.mktemp("cachedbundle"), POLICY, "cachedbundle/allow", revision="r1")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "wasm"


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.members"))


def test_a_second_read_comes_from_the_cache_and_is_the_same_bundle(
    bundle_path: Path, cache_dir: Path
) -> None:
    fresh = read_bundle(bundle_path)
    first = MembersCache(cache_dir)
    assert read_bundle(bundle_path, members_cache=first) == fresh
    assert (first.hits, first.misses, first.stores) == (0, 1, 1)
    [entry] = _entries(cache_dir)
    assert entry.stat().st_mode & 0o777 == 0o600
    second = MembersCache(cache_dir)
    assert read_bundle(bundle_path, members_cache=second) == fresh
    assert (second.hits, second.misses, second.stores) == (1, 0, 0)


def test_an_archive_that_fails_a_check_is_never_stored_and_fails_alike(
    bundle_path: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = io.BytesIO()
    with tarfile.open(bundle_path, "r:gz") as good, tarfile.open(fileobj=out, mode="w:gz") as bad:
        for member in good:
            bad.addfile(member, good.extractfile(member) if member.isfile() else None)
        link = tarfile.TarInfo("/data/link.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        bad.addfile(link)
    path = tmp_path / "linked.tar.gz"
    path.write_bytes(out.getvalue())
    expected = f"bundle {path}: member data/link.json: is a link, not a regular file"
    for _ in range(2):
        with pytest.raises(BundleError) as caught:
            read_bundle(path, members_cache=MembersCache(cache_dir))
        assert str(caught.value) == expected
    assert _entries(cache_dir) == []


def test_the_limits_are_part_of_the_key(bundle_path: Path, cache_dir: Path) -> None:
    read_bundle(bundle_path, members_cache=MembersCache(cache_dir))
    tight = BundleLimits(max_member_bytes=100)
    with pytest.raises(BundleError) as caught:
        read_bundle(bundle_path, limits=tight, members_cache=MembersCache(cache_dir))
    assert str(caught.value) == f"bundle {bundle_path}: member policy.wasm: over 100 bytes"


def test_a_damaged_entry_is_read_afresh_and_replaced(bundle_path: Path, cache_dir: Path) -> None:
    read_bundle(bundle_path, members_cache=MembersCache(cache_dir))
    [entry] = _entries(cache_dir)
    raw = bytearray(entry.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    entry.write_bytes(bytes(raw))
    cache = MembersCache(cache_dir)
    assert read_bundle(bundle_path, members_cache=cache) == read_bundle(bundle_path)
    assert (cache.hits, cache.misses, cache.stores) == (0, 1, 1)


def test_members_round_trip_and_anything_else_is_not_members() -> None:
    files = {"policy.wasm": b"\0asm", "odd\udcffname/data.json": b"{}", "empty": b""}
    payload = encode_members(files)
    assert decode_members(payload) == files
    assert decode_members(b"head" + payload, 4) == files
    assert decode_members(payload[:-1]) is None
    assert decode_members(payload[:3]) is None
    twice = encode_members({"a": b"1"}) * 2
    assert decode_members(twice) is None


def test_the_embedded_engine_reads_its_bundle_through_the_cache(
    bundle_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYAGENT_CACHE_DIR", str(tmp_path / "cache"))
    settings = EngineSettings(engine="embedded", bundle=str(bundle_path))
    for _ in range(2):
        EmbeddedEngine.from_settings(settings)
    assert len(_entries(tmp_path / "cache" / "wasm")) == 1
    monkeypatch.setenv("PYAGENT_WASM_CACHE", "0")
    monkeypatch.setenv("PYAGENT_CACHE_DIR", str(tmp_path / "off"))
    EmbeddedEngine.from_settings(settings)
    assert not (tmp_path / "off").exists()


def test_the_key_names_the_python_and_the_reading_modules() -> None:
    import sys

    from pyagent.engines.wasm import bundle, bundlecache, tarscan

    identity = bundlecache._code_identity().split(b"\0")
    assert identity[0] == sys.version.encode()
    stats = [os.stat(path) for path in (bundle.__file__, tarscan.__file__)]
    assert identity[1:] == [
        part
        for path, info in zip((bundle.__file__, tarscan.__file__), stats, strict=True)
        for part in (path.encode(), str(info.st_size).encode(), str(info.st_mtime_ns).encode())
    ]


def test_keys_and_checksums_are_blake2b_256() -> None:
    import hashlib

    from pyagent.engines.wasm import modcache

    assert modcache.digest(b"pyagent") == hashlib.blake2b(b"pyagent", digest_size=32).digest()
