"""Loading a policy bundle for the embedded engine: verify, refuse rollbacks, activate, record.

With no verification key configured, bundles load as before (unsigned, unchecked). With one, every
bundle goes through :func:`load_bundle`:

1. read the archive safely (:func:`~pyagent.engines.wasm.bundle.read_members`);
2. verify the signature and every file (:func:`~pyagent.bundles.verify.verify_members`);
3. refuse a build serial older than the last accepted one (:class:`~pyagent.bundles.state.BundleState`);
4. activate it (the caller compiles the wasm); only then record it as the last accepted bundle and
   keep a copy of it.

A refused bundle never replaces the last accepted one. With ``fallback`` on, the engine then runs the
last accepted bundle (verified again, with the same key) instead of failing; the refusal is logged
either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generic, TypeVar

from pyagent.bundles.errors import LOG, BundleRejected, RejectionKind, reject
from pyagent.bundles.state import BundleState, default_state_dir
from pyagent.bundles.verify import VerificationConfig, VerifiedBundle, verify_members
from pyagent.engines.wasm.bundle import (
    BundleError,
    WasmBundle,
    bundle_from_members,
    read_archive,
    read_members,
)
from pyagent.errors import InvalidInputError

__all__ = ["ENV_VARS", "BundleTrust", "LoadedBundle", "load_bundle"]

T = TypeVar("T")

#: The environment variables :meth:`BundleTrust.from_env` reads.
ENV_VARS = {
    "key": "PYAGENT_BUNDLE_VERIFICATION_KEY",
    "algorithm": "PYAGENT_BUNDLE_VERIFICATION_ALG",
    "key_id": "PYAGENT_BUNDLE_VERIFICATION_KEY_ID",
    "scope": "PYAGENT_BUNDLE_SCOPE",
    "state_dir": "PYAGENT_STATE_DIR",
    "fallback": "PYAGENT_BUNDLE_FALLBACK",
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class BundleTrust:
    """Bundle verification as configured: the key, the rollback state, and whether to fall back."""

    verification: VerificationConfig
    state: BundleState
    fallback: bool = False

    @classmethod
    def from_options(
        cls,
        *,
        key: str | os.PathLike[str] | None,
        algorithm: str | None = None,
        key_id: str | None = None,
        scope: str | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        fallback: bool = False,
    ) -> BundleTrust | None:
        """None when no key is given (verification off). Options that need a key, without one, are
        a usage error: a typo must not switch verification off silently."""
        if not key:
            given = [
                name
                for name, value in (("algorithm", algorithm), ("key id", key_id), ("scope", scope))
                if value
            ]
            if given or fallback:
                what = ", ".join(given) or "fallback"
                raise InvalidInputError(f"bundle verification {what} given without a verification key")
            return None
        config = VerificationConfig.from_key_file(key, algorithm=algorithm, key_id=key_id, scope=scope)
        state = BundleState(Path(state_dir) if state_dir else default_state_dir())
        return cls(config, state, fallback)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BundleTrust | None:
        """The trust the ``PYAGENT_BUNDLE_*`` and ``PYAGENT_STATE_DIR`` variables configure."""
        env = os.environ if environ is None else environ
        fallback_text = env.get(ENV_VARS["fallback"], "").strip().lower()
        if fallback_text not in _TRUE | _FALSE:
            raise InvalidInputError(f"{ENV_VARS['fallback']}={fallback_text!r}: expected 1 or 0")
        return cls.from_options(
            key=env.get(ENV_VARS["key"]) or None,
            algorithm=env.get(ENV_VARS["algorithm"]) or None,
            key_id=env.get(ENV_VARS["key_id"]) or None,
            scope=env.get(ENV_VARS["scope"]) or None,
            state_dir=env.get(ENV_VARS["state_dir"]) or None,
            fallback=fallback_text in _TRUE,
        )


@dataclass(frozen=True)
class LoadedBundle(Generic[T]):
    """What :func:`load_bundle` activated, and from which bundle."""

    value: T
    bundle: WasmBundle
    source: str
    verified: VerifiedBundle | None = None
    rejected: BundleRejected | None = None
    """Set when the given bundle was refused and the last accepted one runs instead."""


def load_bundle(
    path: str | os.PathLike[str], trust: BundleTrust | None, activate: Callable[[WasmBundle], T]
) -> LoadedBundle[T]:
    """Load the bundle at ``path`` under ``trust`` and ``activate`` it (e.g. compile its wasm).

    Raises ``BundleRejected`` (exit 3) for a refused bundle, unless ``trust.fallback`` is on and the
    last accepted bundle still verifies, which is then activated instead.
    """
    label = os.fspath(path)
    if trust is None:
        bundle = bundle_from_members(read_members(read_archive(label), label=label), label=label)
        return LoadedBundle(activate(bundle), bundle, label)
    try:
        try:
            raw = read_archive(label)
        except BundleError as err:
            raise _unreadable(label, err) from err
        try:
            return _load_verified(raw, label, trust, activate)
        except BundleRejected as err:
            if not (_is_last_good(label, trust) and _moved_on(err, raw, trust)):
                raise
            return _load_last_good(label, trust, activate)  # the newer one that replaced it
    except BundleRejected as rejected:
        if not trust.fallback or trust.state.last_good() is None:
            raise
        kept = str(trust.state.last_good_path)
        try:
            loaded = _load_last_good(kept, trust, activate)
        except BundleRejected as also:
            LOG.error("bundle %s: the last accepted bundle does not verify either: %s", kept, also)
            raise rejected from also
        LOG.warning(
            "bundle %s refused; running the last accepted bundle (serial %d) instead",
            label,
            loaded.verified.serial if loaded.verified else -1,
        )
        return replace(loaded, rejected=rejected)


#: Loads of the kept bundle that another process replaced by a newer one meanwhile, before giving up.
MOVED_ON_ATTEMPTS = 3


def _moved_on(err: BundleRejected, raw: bytes, trust: BundleTrust) -> bool:
    """Whether ``err`` refused the kept bundle ``raw`` as a replay because another process (the
    agent's download thread, a concurrent check) accepted a newer one and replaced it meanwhile:
    then the newer one is to be loaded, not a replay refused (a race audit found a check failing closed,
    and a restarted agent recording no decision, so)."""
    return err.kind is RejectionKind.ROLLBACK and trust.state.last_good() not in (None, raw)


def _is_last_good(label: str, trust: BundleTrust) -> bool:
    try:
        return os.path.samefile(label, trust.state.last_good_path)
    except OSError:
        return False


def _load_last_good(kept: str, trust: BundleTrust, activate: Callable[[WasmBundle], T]) -> LoadedBundle[T]:
    """The last accepted bundle, verified again; loaded anew when a newer one replaces it meanwhile."""
    for _attempt in range(MOVED_ON_ATTEMPTS):
        raw = trust.state.last_good()
        if raw is None:
            break
        try:
            return _load_verified(raw, kept, trust, activate)
        except BundleRejected as err:
            if not _moved_on(err, raw, trust):
                raise
    raise reject(RejectionKind.ROLLBACK, kept, "newer bundles kept replacing it while it loaded")


def _load_verified(
    raw: bytes, label: str, trust: BundleTrust, activate: Callable[[WasmBundle], T]
) -> LoadedBundle[T]:
    try:
        files = read_members(raw, label=label)
    except BundleError as err:
        raise _unreadable(label, err) from err
    verified = verify_members(files, trust.verification, label=label)
    trust.state.check(verified)
    try:
        bundle = bundle_from_members(files, label=label)
    except BundleError as err:
        raise _unreadable(label, err) from err
    value = activate(bundle)
    trust.state.accept(verified, raw)
    return LoadedBundle(value, bundle, label, verified)


def _unreadable(label: str, err: BundleError) -> BundleRejected:
    detail = str(err).removeprefix(f"bundle {label}: ")
    return reject(RejectionKind.UNREADABLE, label, detail)
