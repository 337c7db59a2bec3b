"""A kept bundle that another process replaces by a newer one while it loads (the agent's download
thread, a concurrent ``check``) is loaded anew, never refused as a replay of itself: a race audit found
``check --bundle-fallback`` failing closed, and a restarted agent recording "no decision", so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyagent.bundles.load import BundleTrust, load_bundle
from pyagent.engines.wasm.bundle import WasmBundle
from tests.bundles.conftest import Build, Keys


def _trust(keys: Keys, state_dir: Path, *, fallback: bool = False) -> BundleTrust:
    trust = BundleTrust.from_options(key=str(keys.signer.public), state_dir=state_dir, fallback=fallback)
    assert trust is not None
    return trust


def _replaced_while_loading(trust: BundleTrust, newer: Path) -> Any:
    """An ``activate`` that, the first time, lets another process accept ``newer`` meanwhile."""
    raced: list[bool] = []

    def activate(bundle: WasmBundle) -> WasmBundle:
        if not raced:
            raced.append(True)
            load_bundle(newer, trust, lambda other: other)  # (accepted: it replaces the kept one)
        return bundle

    return activate


def test_the_kept_bundle_replaced_while_it_loads_is_loaded_anew(
    keys: Keys, signed: Build, state_dir: Path
) -> None:
    trust = _trust(keys, state_dir)
    load_bundle(signed(200), trust, lambda bundle: bundle)
    loaded = load_bundle(trust.state.last_good_path, trust, _replaced_while_loading(trust, signed(300)))
    assert (loaded.verified.serial if loaded.verified else None, loaded.rejected) == (300, None)
    last = trust.state.last()
    assert last is not None and last.serial == 300


def test_the_fallback_on_a_kept_bundle_replaced_while_it_loads_takes_the_newer_one(
    keys: Keys, signed: Build, state_dir: Path
) -> None:
    trust = _trust(keys, state_dir, fallback=True)
    load_bundle(signed(200), trust, lambda bundle: bundle)
    loaded = load_bundle(signed(100), trust, _replaced_while_loading(trust, signed(300)))
    assert loaded.verified is not None and loaded.verified.serial == 300
    assert loaded.rejected is not None and str(loaded.rejected.kind) == "rollback"
