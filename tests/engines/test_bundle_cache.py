"""The cache of activated bundle archives' members: a cached archive gives the same bundle and the same
answers, an archive that fails a check (its tar, its ban index) is never stored and fails alike every
time, and the limits, the context, a damaged entry and the switch are honoured."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

from pyagent.engines.base import EngineError, EngineSettings
from pyagent.engines.embedded import EmbeddedEngine
from pyagent.engines.wasm import BundleError, bundlecache, modcache, read_bundle
from pyagent.engines.wasm.bundle import DEFAULT_LIMITS, BundleLimits, read_archive
from pyagent.engines.wasm.bundlecache import MembersCache, decode_members, encode_members
from pyagent.policy import index
from tests.helpers.opa_bin import build_wasm

POLICY = """package cachedbundle

import rego.v1

allow if count(input.apps) == 0
"""


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wasm(tmp_path_factory.mktemp("cachedbundle"), POLICY, "cachedbundle/allow", revision="r1")


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``PYAGENT_CACHE_DIR`` in the test's own directory; returns where the entries go."""
    monkeypatch.setenv("PYAGENT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PYAGENT_WASM_CACHE", raising=False)
    return tmp_path / "cache" / "wasm"


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.members"))


def _engine(bundle: Path) -> EmbeddedEngine:
    return EmbeddedEngine.from_settings(EngineSettings(engine="embedded", bundle=str(bundle)))


def test_a_second_engine_reads_the_cached_members_and_answers_the_same(
    bundle_path: Path, private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    check = index.check

    def counted(data: dict[str, object], *, label: str, replaced: bool = False) -> None:
        checked.append(label)
        check(data, label=label, replaced=replaced)

    monkeypatch.setattr(index, "check", counted)
    first = _engine(bundle_path)
    assert checked == ["policy bundle"]
    [entry] = _entries(private_cache)
    assert entry.stat().st_mode & 0o777 == 0o600
    stored = decode_members(entry.read_bytes(), MembersCache(private_cache).head)
    assert stored == read_bundle(bundle_path).files
    second = _engine(bundle_path)
    assert checked == ["policy bundle"]  # the cached archive's index passed this check when stored
    assert _entries(private_cache) == [entry]
    assert second.manifest == first.manifest == read_bundle(bundle_path).manifest
    assert [engine._policy.evaluate({"apps": []}, "cachedbundle/allow") for engine in (first, second)] == [
        True,
        True,
    ]


def test_an_archive_that_fails_a_check_is_never_stored_and_fails_alike(
    bundle_path: Path, private_cache: Path, tmp_path: Path
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
    for _ in range(2):
        with pytest.raises(BundleError) as caught:
            _engine(path)
        assert str(caught.value) == f"bundle {path}: member data/link.json: is a link, not a regular file"
    assert _entries(private_cache) == []


def test_a_bundle_with_a_stale_ban_index_is_never_stored_and_refused_every_time(
    private_cache: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data" / index.ROOT
    data.mkdir(parents=True)
    stale = index.build({"pyagent": {"bans": {"old": {"apps": {"android": ["com.example.old"]}}}}})
    (data / "data.json").write_text(json.dumps(stale))
    path = build_wasm(tmp_path, POLICY, "cachedbundle/allow", extra_args=[str(tmp_path / "data")])
    for _ in range(2):
        with pytest.raises(
            EngineError, match=r"^policy bundle: data\.pyagent_index was built from other policy data"
        ):
            _engine(path)
    assert _entries(private_cache) == []


def test_the_limits_and_the_context_are_part_of_the_key(bundle_path: Path, tmp_path: Path) -> None:
    raw = read_archive(bundle_path)
    cache = MembersCache(tmp_path / "wasm")
    members = read_bundle(bundle_path).files
    cache.keep(raw, DEFAULT_LIMITS, members, b"checked by A")
    assert cache.find(raw, DEFAULT_LIMITS, b"checked by A") == members
    assert cache.find(raw, DEFAULT_LIMITS, b"checked by B") is None
    assert cache.find(raw, BundleLimits(max_member_bytes=100), b"checked by A") is None
    assert (cache.hits, cache.misses, cache.stores) == (1, 2, 1)


def test_a_damaged_entry_is_read_afresh_and_replaced(bundle_path: Path, private_cache: Path) -> None:
    _engine(bundle_path)
    [entry] = _entries(private_cache)
    stored = entry.read_bytes()
    damaged = bytearray(stored)
    damaged[len(damaged) // 2] ^= 0xFF
    entry.write_bytes(bytes(damaged))
    raw = read_archive(bundle_path)
    assert MembersCache(private_cache).find(raw, DEFAULT_LIMITS, b"") is None
    _engine(bundle_path)
    assert entry.read_bytes() == stored


def test_members_round_trip_and_anything_else_is_not_members() -> None:
    files = {"policy.wasm": b"\0asm", "odd\udcffname/data.json": b"{}", "empty": b""}
    payload = encode_members(files)
    assert decode_members(payload) == files
    assert decode_members(b"head" + payload, 4) == files
    assert decode_members(payload[:-1]) is None
    assert decode_members(payload[:3]) is None
    twice = encode_members({"a": b"1"}) * 2
    assert decode_members(twice) is None


def test_the_switch_turns_the_cache_off(
    bundle_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYAGENT_WASM_CACHE", "0")
    monkeypatch.setenv("PYAGENT_CACHE_DIR", str(tmp_path / "off"))
    _engine(bundle_path)
    assert not (tmp_path / "off").exists()


def test_code_that_cannot_be_looked_at_means_no_entry(bundle_path: Path, tmp_path: Path) -> None:
    """A module file that cannot be stat'ed (an install inside a zip): an entry could outlive a change
    of that code, so nothing is stored or found."""
    raw = read_archive(bundle_path)
    cache = MembersCache(tmp_path / "wasm")
    members = read_bundle(bundle_path).files
    context = bundlecache.code_identity([str(tmp_path / "archive.zip" / "pyagent" / "policy" / "index.py")])
    assert context.endswith(b"\0unknown")
    cache.keep(raw, DEFAULT_LIMITS, members, context)
    assert cache.find(raw, DEFAULT_LIMITS, context) is None
    assert (cache.hits, cache.stores) == (0, 0)
    assert list((tmp_path / "wasm").glob("*.members")) == []


def test_the_key_names_the_python_and_the_reading_modules() -> None:
    from pyagent.engines.wasm import bundle, tarscan

    identity = bundlecache._code_identity().split(b"\0")
    assert identity[0] == sys.version.encode()
    paths = (bundle.__file__, tarscan.__file__)
    assert identity[1:] == [
        part
        for path, info in zip(paths, map(os.stat, paths), strict=True)
        for part in (path.encode(), str(info.st_size).encode(), str(info.st_mtime_ns).encode())
    ]


def test_keys_are_blake2b_256_and_entries_carry_length_and_crc32() -> None:
    assert modcache.digest(b"pyagent") == hashlib.blake2b(b"pyagent", digest_size=32).digest()
    framed = MembersCache(Path("unused")).framed(b"pyagent")
    assert (
        framed
        == b"pyagent-members-2\n"
        + (7).to_bytes(8, "big")
        + zlib.crc32(b"pyagent").to_bytes(4, "big")
        + b"pyagent"
    )
