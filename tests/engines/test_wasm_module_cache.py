"""The compiled-module cache and the direct C calls of the wasm runtime: the cache is only read from a
private directory, a damaged or foreign entry is never loaded, and the policy answers the same with
and without either."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from pyagent.engines.wasm import WasmPolicy, fastcall, modcache, read_bundle
from pyagent.engines.wasm.modcache import MAX_ENTRIES, ModuleCache, default_cache_dir
from tests.helpers.opa_bin import build_wasm

POLICY = """package cached

import rego.v1

banned contains app if {
	some app in input.apps
	app in data.banned
}

allow if count(banned) == 0
"""
DATA = {"banned": ["com.zhiliaoapp.musically"]}
INPUT = {"apps": ["org.mozilla.firefox", "com.zhiliaoapp.musically"]}


@pytest.fixture(scope="module")
def wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    workdir = tmp_path_factory.mktemp("cached")
    return read_bundle(build_wasm(workdir, POLICY, "cached/banned", "cached/allow")).wasm


def _answer(policy: WasmPolicy) -> Any:
    policy.set_data(DATA)
    return policy.evaluate(INPUT, "cached/banned"), policy.evaluate({"apps": []}, "cached/allow")


EXPECTED = (["com.zhiliaoapp.musically"], True)


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.cwasm"))


def test_the_second_load_comes_from_the_cache(wasm: bytes, tmp_path: Path) -> None:
    directory = tmp_path / "cache" / "wasm"
    first = ModuleCache(directory)
    assert _answer(WasmPolicy(wasm, module_cache=first)) == EXPECTED
    assert (first.hits, first.misses, first.stores) == (0, 1, 1)
    assert os.stat(directory).st_mode & 0o777 == 0o700
    [entry] = _entries(directory)
    assert entry.stat().st_mode & 0o777 == 0o600
    second = ModuleCache(directory)
    assert _answer(WasmPolicy(wasm, module_cache=second)) == EXPECTED
    assert (second.hits, second.misses, second.stores) == (1, 0, 0)


@pytest.mark.parametrize("c_function", [True, False], ids=["in-place", "through-deserialize"])
def test_an_entry_is_loaded_from_its_mapping_and_left_as_it_was(
    wasm: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, c_function: bool
) -> None:
    directory = tmp_path / "wasm"
    WasmPolicy(wasm, module_cache=ModuleCache(directory))
    [entry] = _entries(directory)
    stored = entry.read_bytes()
    copies: list[int] = []
    deserialize = wasmtime.Module.deserialize

    def counted(engine: wasmtime.Engine, encoded: bytes) -> wasmtime.Module:
        copies.append(len(encoded))
        return deserialize(engine, encoded)

    monkeypatch.setattr(wasmtime.Module, "deserialize", counted)
    if not c_function:
        monkeypatch.setattr(modcache, "_c_deserialize", lambda: None)
    cache = ModuleCache(directory)
    assert _answer(WasmPolicy(wasm, module_cache=cache)) == EXPECTED
    assert (cache.hits, cache.misses, cache.stores) == (1, 0, 0)
    assert copies == ([] if c_function else [len(stored) - ModuleCache(directory).head])
    assert entry.read_bytes() == stored


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "header"])
def test_a_damaged_entry_is_detected_and_replaced(wasm: bytes, tmp_path: Path, damage: str) -> None:
    directory = tmp_path / "wasm"
    WasmPolicy(wasm, module_cache=ModuleCache(directory))
    [entry] = _entries(directory)
    raw = bytearray(entry.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
    elif damage == "truncate":
        raw = raw[: len(raw) - 100]
    elif damage == "empty":
        raw = bytearray()
    else:
        raw[0] ^= 0xFF
    entry.write_bytes(bytes(raw))
    cache = ModuleCache(directory)
    assert _answer(WasmPolicy(wasm, module_cache=cache)) == EXPECTED
    assert (cache.hits, cache.misses, cache.stores) == (0, 1, 1)
    again = ModuleCache(directory)
    WasmPolicy(wasm, module_cache=again)
    assert again.hits == 1  # the rewritten entry is good


def test_an_entry_whose_recorded_digest_matches_garbage_is_refused_by_wasmtime(
    wasm: bytes, tmp_path: Path
) -> None:
    directory = tmp_path / "wasm"
    WasmPolicy(wasm, module_cache=ModuleCache(directory))
    [entry] = _entries(directory)
    garbage = b"\x7fELF not a wasmtime artefact" * 100
    entry.write_bytes(ModuleCache(directory).framed(garbage))
    cache = ModuleCache(directory)
    assert _answer(WasmPolicy(wasm, module_cache=cache)) == EXPECTED
    assert (cache.hits, cache.misses) == (0, 1)


def test_a_directory_others_can_write_to_is_not_used(wasm: bytes, tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o777)
    cache = ModuleCache(directory)
    assert _answer(WasmPolicy(wasm, module_cache=cache)) == EXPECTED
    assert (cache.hits, cache.misses, cache.stores) == (0, 1, 0)
    assert _entries(directory) == []


def test_a_symlinked_directory_is_not_used(wasm: bytes, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    cache = ModuleCache(link)
    assert _answer(WasmPolicy(wasm, module_cache=cache)) == EXPECTED
    assert cache.stores == 0 and _entries(real) == []


def test_entries_others_can_write_or_symlinks_are_not_loaded(wasm: bytes, tmp_path: Path) -> None:
    directory = tmp_path / "wasm"
    WasmPolicy(wasm, module_cache=ModuleCache(directory))
    [entry] = _entries(directory)
    os.chmod(entry, 0o666)
    cache = ModuleCache(directory)
    WasmPolicy(wasm, module_cache=cache)
    assert cache.hits == 0
    [entry] = _entries(directory)  # replaced by a fresh, private one
    assert entry.stat().st_mode & 0o777 == 0o600
    target = tmp_path / "elsewhere.cwasm"
    entry.rename(target)
    entry.symlink_to(target)
    cache = ModuleCache(directory)
    WasmPolicy(wasm, module_cache=cache)
    assert cache.hits == 0


def test_the_cache_keeps_a_bounded_number_of_entries(wasm: bytes, tmp_path: Path) -> None:
    directory = tmp_path / "wasm"
    WasmPolicy(wasm, module_cache=ModuleCache(directory))
    [entry] = _entries(directory)
    for index in range(MAX_ENTRIES + 5):
        (directory / f"{index:064x}.cwasm").write_bytes(entry.read_bytes())
        os.utime(directory / f"{index:064x}.cwasm", ns=(index, index))
    (directory / ".stale.tmp").write_bytes(b"x")
    os.utime(directory / ".stale.tmp", ns=(0, 0))
    entry.unlink()
    WasmPolicy(wasm, module_cache=ModuleCache(directory))
    left = _entries(directory)
    assert len(left) == MAX_ENTRIES
    assert not (directory / ".stale.tmp").exists()
    assert (directory / f"{MAX_ENTRIES + 4:064x}.cwasm") in left  # the newest are kept


def test_the_default_location_and_switch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYAGENT_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "wasm"
    monkeypatch.delenv("PYAGENT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "pyagent" / "wasm"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # not absolute: ignored, as the spec says
    assert default_cache_dir() == Path(os.path.expanduser("~")) / ".cache" / "pyagent" / "wasm"
    monkeypatch.setenv("PYAGENT_WASM_CACHE", "0")
    assert default_cache_dir() is None and ModuleCache.default() is None


def test_different_modules_have_different_keys(wasm: bytes, tmp_path: Path) -> None:
    cache = ModuleCache(tmp_path)
    assert cache.key(wasm) != cache.key(wasm + b"\x00") and cache.key(wasm) == cache.key(bytes(wasm))


def test_no_cache_at_all_gives_the_same_answers(wasm: bytes) -> None:
    assert _answer(WasmPolicy(wasm, module_cache=False)) == EXPECTED


# ------------------------------------------------------------------------------------- direct calls


def test_exports_are_called_through_the_c_api(wasm: bytes) -> None:
    policy = WasmPolicy(wasm, module_cache=False)
    assert isinstance(policy._ex.eval, fastcall.RawFunc)
    assert isinstance(policy._ex.malloc, fastcall.RawFunc)


def test_without_the_c_api_the_wasmtime_calls_are_used(wasm: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyagent.engines.wasm import runtime

    monkeypatch.setattr(runtime, "raw_func", lambda store, func: None)
    policy = WasmPolicy(wasm, module_cache=False)
    assert not isinstance(policy._ex.eval, fastcall.RawFunc)
    assert _answer(policy) == EXPECTED


def test_raw_calls_check_their_arguments_and_report_traps(wasm: bytes) -> None:
    policy = WasmPolicy(wasm, module_cache=False)
    malloc = policy._ex.malloc
    assert isinstance(malloc, fastcall.RawFunc)
    with pytest.raises(wasmtime.WasmtimeError, match="expected 1 parameters, got 2"):
        malloc(1, 2)
    with pytest.raises(wasmtime.Trap):
        policy._ex.json_dump(0x7FFF_FFF0)  # far outside the linear memory
    assert _answer(policy) == EXPECTED  # still usable
