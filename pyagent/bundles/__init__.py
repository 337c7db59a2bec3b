"""Signed policy bundles: building them with the pinned ``opa build``, and verifying them as OPA does.

* :func:`build_signed_bundle` — ``pyagent policy bundle --signing-key``: a bundle whose
  ``/.signatures.json`` signs every file, ``.manifest`` included, which carries the build serial
  (``metadata.pyagent.serial``) that rollback protection compares.
* :func:`verify_members` — the embedded engine's verifier: the JWT with the configured public key and
  algorithm only, the scope, and every file's digest computed as OPA computes it; nothing unlisted,
  nothing missing, nothing excluded.
* :class:`BundleState` — the last accepted serial and a copy of that bundle, written atomically;
  older serials are refused.
* :func:`load_bundle` / :class:`BundleTrust` — the three together, as the embedded engine uses them.

Every refusal is a :class:`BundleRejected` (exit code 3) with a :class:`RejectionKind` and one line of
reason, logged on the ``pyagent.bundles`` logger.

The names are imported lazily, so ``import pyagent.bundles.constants`` (the command line) loads no
cryptography.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyagent.bundles.build import SignedBuild, build_signed_bundle, default_serial
    from pyagent.bundles.constants import PUBLIC_KEY_ALGORITHMS, SIGNATURES_FILE, TARGETS
    from pyagent.bundles.errors import BundleRejected, RejectionKind
    from pyagent.bundles.jws import VerificationKey, load_verification_key
    from pyagent.bundles.load import ENV_VARS, BundleTrust, LoadedBundle, load_bundle
    from pyagent.bundles.state import AcceptedBundle, BundleState, StateError, default_state_dir
    from pyagent.bundles.verify import VerificationConfig, VerifiedBundle, verify_members

_EXPORTS = {
    "SignedBuild": "build",
    "build_signed_bundle": "build",
    "default_serial": "build",
    "PUBLIC_KEY_ALGORITHMS": "constants",
    "SIGNATURES_FILE": "constants",
    "TARGETS": "constants",
    "BundleRejected": "errors",
    "RejectionKind": "errors",
    "VerificationKey": "jws",
    "load_verification_key": "jws",
    "ENV_VARS": "load",
    "BundleTrust": "load",
    "LoadedBundle": "load",
    "load_bundle": "load",
    "AcceptedBundle": "state",
    "BundleState": "state",
    "StateError": "state",
    "default_state_dir": "state",
    "VerificationConfig": "verify",
    "VerifiedBundle": "verify",
    "verify_members": "verify",
}

__all__ = [
    "ENV_VARS",
    "PUBLIC_KEY_ALGORITHMS",
    "SIGNATURES_FILE",
    "TARGETS",
    "AcceptedBundle",
    "BundleRejected",
    "BundleState",
    "BundleTrust",
    "LoadedBundle",
    "RejectionKind",
    "SignedBuild",
    "StateError",
    "VerificationConfig",
    "VerificationKey",
    "VerifiedBundle",
    "build_signed_bundle",
    "default_serial",
    "default_state_dir",
    "load_bundle",
    "load_verification_key",
    "verify_members",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
