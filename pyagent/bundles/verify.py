"""Verifying a signed OPA bundle: its ``/.signatures.json`` JWT, then every file against the signed list.

The rules, each a refusal with its own :class:`~pyagent.bundles.errors.RejectionKind`:

* with a verification key configured, a bundle without ``/.signatures.json`` is refused. Verification
  depends on the key being configured, never on a key id being set (the side-step fixed in OPA
  v1.21.3, GHSA-g2pf-6v5v-qcc8) nor on anything in the bundle;
* ``.signatures.json`` holds exactly one JWT (as OPA: more than one is refused) and no plugin; the JWT
  verifies with the configured key and algorithm only (PyJWT, see :mod:`pyagent.bundles.jws`); when a
  key id is configured, the header's ``kid`` and the payload's ``keyid`` choose nothing (as OPA: the
  configured key id wins, so a bundle from ``opa build --signing-key``, which names its own, verifies);
  its ``scope`` equals the configured scope (both absent counts as equal);
* every file of the archive except the root ``.signatures.json`` is listed in the signed payload with a
  matching digest (computed as OPA does, :mod:`pyagent.bundles.digest`); every listed file is present;
  no name is listed twice; nothing is excluded from verification;
* the signed ``.manifest`` carries the build serial ``metadata.pyagent.serial`` (a non-negative
  integer) that rollback protection compares (:mod:`pyagent.bundles.state`).

Verification works on the members exactly as :func:`~pyagent.engines.wasm.bundle.read_members` returns
them, and the engine loads those same bytes, so what is verified is what is evaluated.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from pyagent.bundles.constants import MAX_SERIAL, SIGNATURES_FILE
from pyagent.bundles.digest import DigestError, NotCanonicalJson, TooDeepToHash, file_digest
from pyagent.bundles.errors import RejectionKind, reject
from pyagent.bundles.jws import (
    JwsError,
    VerificationKey,
    load_verification_key,
    unverified_header,
    unverified_payload,
    verify_compact,
)

__all__ = ["SIGNATURES_FILE", "VerificationConfig", "VerifiedBundle", "pyagent_metadata", "verify_members"]

_JWS_KINDS = {
    "malformed": RejectionKind.MALFORMED_SIGNATURE,
    "algorithm": RejectionKind.BAD_ALGORITHM,
    "signature": RejectionKind.BAD_SIGNATURE,
}


@dataclass(frozen=True)
class VerificationConfig:
    """What a bundle must be signed with. ``scope=None`` means the token must carry no scope."""

    key: VerificationKey
    key_id: str | None = None
    scope: str | None = None

    @classmethod
    def from_key_file(
        cls,
        path: str | os.PathLike[str],
        *,
        algorithm: str | None = None,
        key_id: str | None = None,
        scope: str | None = None,
    ) -> VerificationConfig:
        return cls(load_verification_key(path, algorithm), key_id or None, scope or None)


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose signature and every file checked out."""

    label: str
    serial: int
    revision: str
    built_at: int | None
    """``metadata.pyagent.built_at``: when the bundle was built, in Unix seconds."""
    content_digest: str
    """SHA-256 over the signed file list: equal for two bundles with the same files and contents."""
    claims: Mapping[str, Any] = field(repr=False)


def verify_members(files: Mapping[str, bytes], config: VerificationConfig, *, label: str) -> VerifiedBundle:
    """Verify a bundle's members (clean path to bytes) against ``config``; raise ``BundleRejected``."""
    if SIGNATURES_FILE not in files:
        raise reject(
            RejectionKind.UNSIGNED,
            label,
            f"no /{SIGNATURES_FILE}, and a verification key is configured: unsigned bundles are refused",
        )
    _, payload = _verified_token(files[SIGNATURES_FILE], config, label)
    _check_scope(payload, config, label)
    listed = _signed_files(payload, label)
    _check_files(files, listed, label)
    manifest = _manifest(files, label)
    serial = _serial(manifest, label)
    revision = manifest.get("revision", "")
    built_at = pyagent_metadata(manifest).get("built_at")
    return VerifiedBundle(
        label=label,
        serial=serial,
        revision=revision if isinstance(revision, str) else "",
        built_at=built_at if isinstance(built_at, int) and not isinstance(built_at, bool) else None,
        content_digest=_content_digest(listed),
        claims={k: v for k, v in payload.items() if k != "files"},
    )


def check_signed_digests(files: Mapping[str, bytes], *, label: str) -> None:
    """Where no key is configured: a signed bundle's files against the digests its own signature
    lists, so one edited, added to or cut after signing is refused (``BundleRejected``). Who signed
    it is not known without the key."""
    _check_files(files, _signed_files(_unverified(files, label)[1], label), label)


def signer_config(
    files: Mapping[str, bytes], keys: Mapping[str, VerificationConfig], *, label: str
) -> VerificationConfig:
    """The configured key a signed bundle must verify with where ``[keys]`` are configured but no
    ``signing``: the key its signature names (the JWT header's ``kid``, else the payload's
    ``keyid``), as OPA chooses it. One that names none is verified with the one key when one is
    configured (OPA refuses it: its key id is empty; pyagent's own signed builds name none)."""
    header, payload = _unverified(files, label)
    named = header.get("kid") or payload.get("keyid")
    if isinstance(named, str) and named in keys:
        return keys[named]
    if named is None and len(keys) == 1:
        return next(iter(keys.values()))
    known = ", ".join(sorted(keys))
    what = f"names key {json.dumps(named)}" if named is not None else "names no key"
    raise reject(RejectionKind.WRONG_KEY_ID, label, f"the signature {what}; configured keys: {known}")


def _unverified(files: Mapping[str, bytes], label: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (header, payload) of a bundle's one signature token, NOT verified (to choose the key, or
    where none is configured)."""
    try:
        doc = json.loads(files[SIGNATURES_FILE].decode("utf-8"))
        tokens = doc["signatures"] if isinstance(doc, dict) else None
    except (UnicodeError, ValueError, RecursionError, KeyError):
        tokens = None
    if not isinstance(tokens, list) or len(tokens) != 1 or not isinstance(tokens[0], str):
        raise reject(RejectionKind.MALFORMED_SIGNATURE, label, f"{SIGNATURES_FILE}: expected exactly one JWT")
    try:
        return unverified_header(tokens[0]), unverified_payload(tokens[0])
    except JwsError as err:
        raise reject(RejectionKind.MALFORMED_SIGNATURE, label, str(err)) from None


def _verified_token(
    raw: bytes, config: VerificationConfig, label: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeError, ValueError, RecursionError):
        raise reject(RejectionKind.MALFORMED_SIGNATURE, label, f"{SIGNATURES_FILE}: not JSON") from None
    if not isinstance(doc, dict):
        raise reject(RejectionKind.MALFORMED_SIGNATURE, label, f"{SIGNATURES_FILE}: not a JSON object")
    plugin = doc.get("plugin", "")
    if plugin not in ("", "_default"):
        raise reject(
            RejectionKind.MALFORMED_SIGNATURE, label, f"{SIGNATURES_FILE}: signing plugin {plugin!r} refused"
        )
    tokens = doc.get("signatures")
    if not isinstance(tokens, list) or len(tokens) != 1 or not isinstance(tokens[0], str):
        count = len(tokens) if isinstance(tokens, list) else 0
        raise reject(
            RejectionKind.UNSIGNED if count == 0 else RejectionKind.MALFORMED_SIGNATURE,
            label,
            f"{SIGNATURES_FILE}: expected exactly one JWT, found {count}",
        )
    try:
        return verify_compact(tokens[0], config.key)
    except JwsError as err:
        raise reject(_JWS_KINDS[err.reason], label, str(err)) from None


def _check_scope(payload: Mapping[str, Any], config: VerificationConfig, label: str) -> None:
    signed = payload.get("scope")
    if signed == "":
        signed = None
    if signed != config.scope:
        shown = json.dumps(signed) if signed is not None else "no scope"
        wanted = json.dumps(config.scope) if config.scope is not None else "no scope"
        raise reject(RejectionKind.WRONG_SCOPE, label, f"signed for {shown}, configured for {wanted}")


def _signed_files(payload: Mapping[str, Any], label: str) -> dict[str, tuple[str, str]]:
    entries = payload.get("files")
    if not isinstance(entries, list) or not entries:
        raise reject(RejectionKind.MALFORMED_SIGNATURE, label, "the signed payload lists no files")
    listed: dict[str, tuple[str, str]] = {}
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        digest = entry.get("hash") if isinstance(entry, dict) else None
        algorithm = entry.get("algorithm") if isinstance(entry, dict) else None
        if not (isinstance(name, str) and isinstance(digest, str) and isinstance(algorithm, str)):
            raise reject(RejectionKind.BAD_HASH, label, f"signed file entry {json.dumps(entry)} is malformed")
        if name in listed:
            raise reject(RejectionKind.MALFORMED_SIGNATURE, label, f"{name}: listed twice in the signature")
        if name == SIGNATURES_FILE:
            raise reject(RejectionKind.MALFORMED_SIGNATURE, label, f"{name}: cannot sign itself")
        listed[name] = (algorithm, digest.lower())
    return listed


#: Why a signed file could not be hashed, as a refusal says it (else: its hash cannot be checked).
_DIGEST_KINDS: dict[type[DigestError], RejectionKind] = {
    TooDeepToHash: RejectionKind.UNREADABLE,
    NotCanonicalJson: RejectionKind.TAMPERED,
}


def _check_files(files: Mapping[str, bytes], listed: Mapping[str, tuple[str, str]], label: str) -> None:
    extra = sorted(name for name in files if name != SIGNATURES_FILE and name not in listed)
    if extra:
        raise reject(
            RejectionKind.EXTRA_FILE, label, f"{', '.join(extra[:5])}: not included in the bundle signature"
        )
    missing = sorted(name for name in listed if name not in files)
    if missing:
        raise reject(
            RejectionKind.MISSING_FILE, label, f"{', '.join(missing[:5])}: signed but not in the bundle"
        )
    for name in sorted(listed):
        algorithm, wanted = listed[name]
        try:
            actual = file_digest(name, files[name], algorithm)
        except DigestError as err:
            raise reject(_DIGEST_KINDS.get(type(err), RejectionKind.BAD_HASH), label, str(err)) from None
        if actual != wanted:
            raise reject(
                RejectionKind.TAMPERED,
                label,
                f"{name}: digest mismatch (signed {wanted[:16]}..., got {actual[:16]}...)",
            )


def _manifest(files: Mapping[str, bytes], label: str) -> dict[str, Any]:
    try:
        manifest = json.loads(files[".manifest"]) if ".manifest" in files else {}
    except (UnicodeError, ValueError, RecursionError):
        raise reject(RejectionKind.UNVERSIONED, label, ".manifest: not JSON") from None
    if not isinstance(manifest, dict):
        raise reject(RejectionKind.UNVERSIONED, label, ".manifest: not a JSON object")
    return manifest


def pyagent_metadata(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """The manifest's ``metadata.pyagent`` object (build serial, build time), or an empty one."""
    metadata = manifest.get("metadata")
    pyagent = metadata.get("pyagent") if isinstance(metadata, dict) else None
    return pyagent if isinstance(pyagent, dict) else {}


def is_serial(value: object) -> TypeGuard[int]:
    """A build serial: an integer from 0 to :data:`MAX_SERIAL`."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SERIAL


def _serial(manifest: Mapping[str, Any], label: str) -> int:
    serial = pyagent_metadata(manifest).get("serial")
    if not is_serial(serial):
        raise reject(
            RejectionKind.UNVERSIONED,
            label,
            f"the signed .manifest has no build serial (metadata.pyagent.serial, an integer from 0 to "
            f"{MAX_SERIAL}); build it with `pyagent policy bundle --signing-key`",
        )
    return serial


def _content_digest(listed: Mapping[str, tuple[str, str]]) -> str:
    text = json.dumps(sorted([name, *listed[name]] for name in listed), separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
