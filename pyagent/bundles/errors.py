"""Why a policy bundle is refused: one kind per attack or fault, one line per refusal."""

from __future__ import annotations

import enum

from pyagent.errors import NoDecisionError
from pyagent.logsetup import get_logger
from pyagent.termsafe import shorten

LOG = get_logger("pyagent.bundles")


class RejectionKind(enum.StrEnum):
    """What was wrong with a refused bundle. The values are stable: logs and metrics count by them."""

    UNREADABLE = "unreadable"
    """Not a safe, readable bundle archive (see :mod:`pyagent.engines.wasm.bundle`)."""
    UNSIGNED = "unsigned"
    """A verification key is configured and the bundle has no ``/.signatures.json`` (or it was stripped)."""
    UNVERIFIABLE = "unverifiable"
    """The bundle is signed and the agent has no key to verify it with (OPA: "verification key not
    provided"): a signature nobody checks would pass for one checked."""
    MALFORMED_SIGNATURE = "malformed-signature"
    """``.signatures.json`` or its JWT is not well formed, or names an unsupported plugin."""
    BAD_ALGORITHM = "bad-algorithm"
    """The JWT's ``alg`` is not the configured one: ``none``, HMAC with the public key, another family."""
    BAD_SIGNATURE = "bad-signature"
    """The JWT signature does not verify with the configured key (another key, or a forged token)."""
    WRONG_KEY_ID = "wrong-key-id"
    """The JWT names a key id other than the configured one."""
    WRONG_SCOPE = "wrong-scope"
    """The signed scope is not the configured scope."""
    BAD_HASH = "bad-hash"
    """A signed file entry is malformed or uses a hash algorithm that is refused (MD5, SHA-1, unknown)."""
    TAMPERED = "tampered"
    """A file's content does not match the digest in the signature."""
    EXTRA_FILE = "extra-file"
    """The bundle holds a file the signature does not list."""
    MISSING_FILE = "missing-file"
    """The signature lists a file the bundle does not hold."""
    UNVERSIONED = "unversioned"
    """The signed manifest carries no build serial (``metadata.pyagent.serial``): no rollback protection."""
    ROLLBACK = "rollback"
    """The build serial is older than the last accepted one, or reuses it for different content."""
    OUTSIDE_ROOTS = "outside-roots"
    """The manifest's ``roots`` are malformed or overlap, or a file lies outside them."""
    DIGEST_MISMATCH = "digest-mismatch"
    """An OCI registry sent bytes whose SHA-256 is not the digest asked for (manifest or bundle layer)."""


class BundleRejected(NoDecisionError):
    """A bundle failed verification. Exit code 3 (no decision); ``str()`` is one line with the reason."""

    def __init__(self, kind: RejectionKind, label: str, detail: str) -> None:
        super().__init__(f"bundle {label}: rejected ({kind}): {detail}")
        self.kind = kind
        self.label = label
        self.detail = detail


#: The longest refusal detail kept, in characters.
MAX_DETAIL = 1000


#: Why a signed bundle is refused where no key is configured (the agent's ``[keys]``, as OPA's).
NO_KEY_CONFIGURED = (
    "it is signed and no verification key is configured ([keys], bundles.NAME.signing): its signature "
    "cannot be checked; refused, as OPA refuses it"
)


def reject(kind: RejectionKind, label: str, detail: str) -> BundleRejected:
    """The error for a refused bundle, logged once here (``raise reject(...)``)."""
    # what a bundle says of itself (a key name, a file name) is the sender's: bounded in the message,
    # which goes to the status file and the status messages
    err = BundleRejected(kind, label, shorten(" ".join(detail.split()), MAX_DETAIL))
    LOG.warning("%s", err)
    return err
