"""The ``embedded`` engine: the policy compiled to WebAssembly by the pinned ``opa build -t wasm``,
run in-process with wasmtime. No server, and OPA's own compiled semantics.

The bundle (``--bundle``/``PYAGENT_BUNDLE``; else a checkout's ``build/bundle.tar.gz`` from ``make
policy``, or the one an installed package ships; ``pyagent check --policy DIR`` compiles one) carries
the compiled policy and its data; ``--data`` overlays are merged into that data once, when the engine
is built.

Signed bundles: with ``PYAGENT_BUNDLE_VERIFICATION_KEY`` set (a PEM public key), the bundle must carry
a valid signature over every file, the configured scope (``PYAGENT_BUNDLE_SCOPE``), and a build serial
no older than the last accepted one (kept in ``PYAGENT_STATE_DIR``, default ``/var/lib/pyagent`` as
root, else ``$XDG_STATE_HOME/pyagent``);
anything else is refused with exit code 3 and the reason (:mod:`pyagent.bundles`).
``PYAGENT_BUNDLE_FALLBACK=1`` runs the last accepted bundle instead of failing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pyagent.engines.base import ENTRYPOINT, Engine, EngineError, EngineName, EngineSettings
from pyagent.policy.data import DataOverlay, load_overlay, merge, overlay_digest

if TYPE_CHECKING:
    from pyagent.bundles.load import BundleTrust
    from pyagent.bundles.verify import VerifiedBundle
    from pyagent.engines.wasm.bundle import WasmBundle
    from pyagent.engines.wasm.runtime import WasmPolicy


class Activate(Protocol):
    """Makes a bundle evaluable (see :func:`_activator`)."""

    def __call__(self, bundle: WasmBundle, *, index_checked: bool = False) -> WasmPolicy: ...


#: The name the embedded engine's bundle goes by in decision-log events when no ``[bundles.NAME]``
#: downloaded it: the policy's, as ``pyagent server publish --name`` uses it in the README.
BUNDLE_NAME = "pyagent"


def default_bundle_path(state_dir: str | None = None) -> Path:
    """The bundle to decide with when none is given: ``PYAGENT_BUNDLE`` when set; else, in a checkout,
    ``build/bundle.tar.gz`` (``make policy``); else the bundle an installed package ships. A checkout's
    build older than a policy source is never used: the policy is compiled afresh (see
    :func:`pyagent.policy.compiled.current_bundle`)."""
    from pyagent.policy import shipped
    from pyagent.policy.compiled import current_bundle

    env = os.environ.get("PYAGENT_BUNDLE")
    path = Path(env) if env else shipped.default_bundle()
    return current_bundle(path, state_dir=state_dir)


def _missing_bundle(path: Path) -> str:
    from pyagent.policy import shipped

    fix = "run `make policy`" if shipped.checkout() else "reinstall pyagent (its wheel ships one)"
    return f"{path}: no compiled policy bundle; {fix}, or give --bundle or --policy (env PYAGENT_BUNDLE)"


def verification_asked(settings: EngineSettings) -> bool:
    """True when any bundle-verification setting is given, by option or environment."""
    given = (
        settings.verification_key,
        settings.verification_alg,
        settings.verification_key_id,
        settings.bundle_scope,
        settings.bundle_fallback,
    )
    return any(given) or any(
        name.startswith("PYAGENT_BUNDLE_") and value for name, value in os.environ.items()
    )


def _activator(overlays: Sequence[DataOverlay]) -> Activate:
    """What makes a bundle evaluable: its wasm compiled, its data (and the overlays) set with the ban
    index (:mod:`pyagent.policy.index`) built from that data. A bundle whose own index does not match
    its bans is refused with the reason (``index_checked``: it was found to match already)."""
    from pyagent.engines.wasm.runtime import WasmPolicy
    from pyagent.policy import index

    def activate(bundle: WasmBundle, *, index_checked: bool = False) -> WasmPolicy:
        if not index_checked:
            try:
                index.check(bundle.data, label="policy bundle", replaced=True)
            except index.StaleIndexError as err:
                raise EngineError(str(err)) from err
        if overlays:  # the bundle's own data was checked when it was built and published
            from pyagent.policy import datacheck

            datacheck.check_overlays(bundle.data, "policy bundle", overlays)
        # with_index copies what it changes: the bundle's own data needs no copy when nothing merges.
        data = index.with_index(merge(bundle.data, overlays) if overlays else bundle.data)
        policy = WasmPolicy(bundle.wasm)
        policy.set_data(data)
        return policy

    return activate


@functools.cache
def _index_code() -> bytes:
    """The code that checks a bundle's ban index, for the members cache's key."""
    from pyagent.engines.wasm.bundlecache import code_identity
    from pyagent.policy import index, orgindex

    return code_identity([module.__file__ or "" for module in (index, orgindex)])


def _activated_file(path: Path, activate: Activate) -> tuple[WasmBundle, WasmPolicy]:
    """The unsigned bundle at ``path``, read and activated. An archive activated before, byte for
    byte, under the same code, has its members from the cache (:mod:`~pyagent.engines.wasm.bundlecache`:
    no ``tar.gz`` to inflate and parse) and its ban index is not checked again; an archive is stored
    there only once it has passed every check and been activated."""
    from pyagent.engines.wasm.bundle import DEFAULT_LIMITS, bundle_from_members, read_archive, read_members
    from pyagent.engines.wasm.bundlecache import MembersCache

    label = str(path)
    raw = read_archive(path)
    cache = MembersCache.default()
    cached = None if cache is None else cache.find(raw, DEFAULT_LIMITS, _index_code())
    members = read_members(raw, label=label) if cached is None else cached
    bundle = bundle_from_members(members, label=label)
    policy = activate(bundle, index_checked=cached is not None)
    if cache is not None and cached is None:
        cache.keep(raw, DEFAULT_LIMITS, members, _index_code())
    return bundle, policy


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
        verified: VerifiedBundle | None = None,
    ) -> None:
        self._policy = policy
        self._suffix = revision_suffix
        self.source = source
        self.manifest: Mapping[str, Any] = manifest or {}
        #: The signature check's outcome, when bundle verification is configured.
        self.verified = verified
        revision = self.manifest.get("revision", "")  # (a build without --revision has none: "")
        self.last_bundles = {BUNDLE_NAME: {"revision": revision if isinstance(revision, str) else ""}}

    @classmethod
    def from_bundle(
        cls,
        bundle: WasmBundle,
        *,
        source: str,
        verified: VerifiedBundle | None = None,
        data_files: Sequence[str] = (),
    ) -> EmbeddedEngine:
        """An engine for a bundle already read (and, when signed, already verified) by the caller."""
        overlays = [load_overlay(path) for path in data_files]
        suffix = f"+data.{overlay_digest(overlays)}" if overlays else ""
        policy = _activator(overlays)(bundle)
        return cls(policy, revision_suffix=suffix, source=source, manifest=bundle.manifest, verified=verified)

    @classmethod
    def from_trusted_file(
        cls, path: Path, trust: BundleTrust | None, *, data_files: Sequence[str] = ()
    ) -> EmbeddedEngine:
        """An engine for the bundle at ``path``, verified under ``trust`` as it loads (when given)."""
        from pyagent.bundles.load import load_bundle

        overlays = [load_overlay(name) for name in data_files]
        suffix = f"+data.{overlay_digest(overlays)}" if overlays else ""
        loaded = load_bundle(path, trust, _activator(overlays))
        return cls(
            loaded.value,
            revision_suffix=suffix,
            source=loaded.source,
            manifest=loaded.bundle.manifest,
            verified=loaded.verified,
        )

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> EmbeddedEngine:
        overlays = [load_overlay(path) for path in settings.data_files]
        if settings.bundle:
            from pyagent.policy.compiled import current_bundle

            path = current_bundle(Path(settings.bundle), state_dir=settings.state_dir)
        else:
            path = default_bundle_path(settings.state_dir)
        activate = _activator(overlays)
        suffix = f"+data.{overlay_digest(overlays)}" if overlays else ""
        if not verification_asked(settings):
            # No signature to check: the bundle machinery (and its crypto imports) is not needed.
            if not path.is_file():
                raise EngineError(_missing_bundle(path))
            bundle, policy = _activated_file(path, activate)
            return cls(policy, revision_suffix=suffix, source=str(path), manifest=bundle.manifest)

        from pyagent.bundles.load import BundleTrust, load_bundle

        trust = (
            BundleTrust.from_options(
                key=settings.verification_key,
                algorithm=settings.verification_alg,
                key_id=settings.verification_key_id,
                scope=settings.bundle_scope,
                state_dir=settings.state_dir,
                fallback=settings.bundle_fallback,
            )
            if settings.verification_key
            else BundleTrust.from_env()
        )
        if not path.is_file() and not (trust and trust.fallback):
            raise EngineError(_missing_bundle(path))

        loaded = load_bundle(path, trust, activate)
        return cls(
            loaded.value,
            revision_suffix=suffix,
            source=loaded.source,
            manifest=loaded.bundle.manifest,
            verified=loaded.verified,
        )

    @property
    def revision_suffix(self) -> str:
        return self._suffix

    def evaluate(self, policy_input: Mapping[str, Any]) -> dict[str, Any]:
        result = self._policy.evaluate(dict(policy_input), entrypoint=ENTRYPOINT)
        if not isinstance(result, dict):
            raise EngineError(f"embedded engine: {ENTRYPOINT} gave {type(result).__name__}, not an object")
        return result
