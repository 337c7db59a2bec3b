"""The ``embedded`` engine: the policy compiled to WebAssembly by the pinned ``opa build -t wasm``,
run in-process with wasmtime. No server, and OPA's own compiled semantics.

The bundle (``build/bundle.tar.gz`` from ``make policy``, or ``--bundle``/``PYAGENT_BUNDLE``)
carries the compiled policy and its data; ``--data`` overlays are merged into that data once,
when the engine is built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pyagent.engines.base import ENTRYPOINT, Engine, EngineError, EngineName, EngineSettings
from pyagent.policy.data import load_overlay, merge, overlay_digest

if TYPE_CHECKING:
    from pyagent.engines.wasm.runtime import WasmPolicy

#: Where `make policy` writes the compiled bundle in a checkout.
DEFAULT_BUNDLE = Path(__file__).resolve().parents[2] / "build" / "bundle.tar.gz"


def default_bundle_path() -> Path:
    """``PYAGENT_BUNDLE`` when set, else the checkout's ``build/bundle.tar.gz``."""
    env = os.environ.get("PYAGENT_BUNDLE")
    return Path(env) if env else DEFAULT_BUNDLE


class EmbeddedEngine(Engine):
    """Evaluates the wasm-compiled policy in this process. Not thread-safe: one per thread."""

    name: ClassVar[EngineName] = EngineName.EMBEDDED

    def __init__(
        self,
        policy: WasmPolicy,
        *,
        revision_suffix: str = "",
        source: str = "",
        manifest: Mapping[str, Any] | None = None,
    ) -> None:
        self._policy = policy
        self._suffix = revision_suffix
        self.source = source
        self.manifest: Mapping[str, Any] = manifest or {}

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> EmbeddedEngine:
        overlays = [load_overlay(path) for path in settings.data_files]
        path = Path(settings.bundle) if settings.bundle else default_bundle_path()
        if not path.is_file():
            raise EngineError(
                f"{path}: no compiled policy bundle; run `make policy` or give --bundle (env PYAGENT_BUNDLE)"
            )
        from pyagent.engines.wasm.bundle import read_bundle
        from pyagent.engines.wasm.runtime import WasmPolicy

        bundle = read_bundle(path)
        policy = WasmPolicy(bundle.wasm)
        policy.set_data(merge(bundle.data, overlays))
        suffix = f"+data.{overlay_digest(overlays)}" if overlays else ""
        return cls(policy, revision_suffix=suffix, source=str(path), manifest=bundle.manifest)

    @property
    def revision_suffix(self) -> str:
        return self._suffix

    def evaluate(self, policy_input: Mapping[str, Any]) -> dict[str, Any]:
        result = self._policy.evaluate(dict(policy_input), entrypoint=ENTRYPOINT)
        if not isinstance(result, dict):
            raise EngineError(f"embedded engine: {ENTRYPOINT} gave {type(result).__name__}, not an object")
        return result
