"""Publishing: the bundles that ``pyagent policy bundle`` made (the Rego build for OPA, the wasm
build for agents) checked and stored as one new revision. The server never signs: with a
verification key configured it refuses unsigned or badly signed bundles; without one it accepts
unsigned bundles and says so, and refuses a signed one whose files do not match the digests its
signature lists (edited after signing). Either way a revision must be newer than the current one (CONTRACT
section 7): a build serial (``.manifest`` ``metadata.pyagent.serial``, read unverified when no key
is configured) greater than the current serial, or else a revision never published under the name
(the store decides, :meth:`pyagent.server.store.base.Store.publish`)."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyagent.bundles.constants import MAX_SERIAL
from pyagent.bundles.roots import check_roots
from pyagent.bundles.verify import (
    SIGNATURES_FILE,
    VerificationConfig,
    check_signed_digests,
    is_serial,
    pyagent_metadata,
    verify_members,
)
from pyagent.engines.wasm.bundle import BundleLimits, read_members
from pyagent.engines.wasm.capabilities import check_members as check_builtins
from pyagent.errors import InvalidInputError, PyagentError
from pyagent.policy.datacheck import check_members as check_data
from pyagent.policy.index import check_members as check_index
from pyagent.server.store.base import BundleFile, NewRevision, Store
from pyagent.server.store.schema import ID_LENGTH
from pyagent.termsafe import shorten

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
LIMITS = BundleLimits(
    max_archive_bytes=MAX_BUNDLE_BYTES,
    max_member_bytes=MAX_BUNDLE_BYTES,
    max_total_bytes=4 * MAX_BUNDLE_BYTES,
)


@dataclass(frozen=True)
class Published:
    revision_id: int
    name: str
    revision: str
    serial: int | None
    signed: bool
    targets: tuple[str, ...]
    note: str
    stored: bool = True
    """False: these builds are the current revision's already, byte for byte (a publish retried after
    its answer was lost): nothing is stored, and the publish succeeds, as a PUT of what is there does."""


def check_bundle_name(name: str) -> str:
    if not _NAME.fullmatch(name):  # (match: "$" lets a trailing newline through)
        raise InvalidInputError(
            f"bundle name {name!r}: use 1-200 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def publish(
    store: Store,
    name: str,
    archives: Sequence[tuple[str, bytes]],
    *,
    verification: VerificationConfig | None,
    published_by: str,
) -> Published:
    """Check ``archives`` (label, bytes) and store them as the next revision of bundle ``name``."""
    check_bundle_name(name)
    if not archives:
        raise InvalidInputError("publish: give the bundle files (the rego build, the wasm build, or both)")
    files: dict[str, BundleFile] = {}
    revisions: set[tuple[str, int | None]] = set()
    carries_signature = False
    for label, raw in archives:
        target, revision, serial, signed = _inspect(label, raw, verification)
        carries_signature = carries_signature or signed
        if target in files:
            raise InvalidInputError(
                f"{label}: a second {target} bundle; give one rego and one wasm build at most"
            )
        files[target] = BundleFile(target, f'"{hashlib.sha256(raw).hexdigest()}"', raw)
        revisions.add((revision, serial))
    if len({revision for revision, _ in revisions}) == 1 and len(revisions) != 1:
        (revision, _), *_ = revisions
        serials = ", ".join(sorted((str(s) for _, s in revisions), key=lambda s: (len(s), s)))
        raise InvalidInputError(
            f"publish: the bundles are builds of revision {revision!r} with different serials ({serials}): "
            "build both with the same --serial (pyagent policy bundle --serial N)"
        )
    if len(revisions) != 1:
        found = ", ".join(f"{r!r} (serial {s})" for r, s in sorted(revisions, key=str))
        raise InvalidInputError(f"publish: the bundles are of different revisions: {found}")
    revision, serial = revisions.pop()
    done = store.publish(
        NewRevision(name, revision, serial, verification is not None, published_by, list(files.values()))
    )
    if not done.stored:  # (a retry after its answer was lost: what it brings is the current revision's)
        targets = tuple(sorted(files))
        note = f"already published: the current revision's {' and '.join(targets)} build, byte for byte"
        return Published(
            done.revision_id, name, revision, serial, verification is not None, targets, note, False
        )
    if verification is not None:
        note = "signature verified"
    elif carries_signature:
        note = "signer not verified (no verification key is configured); its file digests match"
    else:
        note = "unsigned: no verification key is configured"
    return Published(
        done.revision_id, name, revision, serial, verification is not None, tuple(sorted(files)), note
    )


def _inspect(
    label: str, raw: bytes, verification: VerificationConfig | None
) -> tuple[str, str, int | None, bool]:
    """(target, revision, serial, carries a signature) of one bundle archive."""
    try:
        members = read_members(raw, label=label, limits=LIMITS)
    except PyagentError as err:
        raise InvalidInputError(str(err)) from err
    serial: int | None = None
    try:  # first: nothing of a bundle the key does not vouch for is read further, nor its wasm run
        if verification is not None:
            serial = verify_members(members, verification, label=label).serial
        elif SIGNATURES_FILE in members:
            check_signed_digests(members, label=label)
        check_index(members, label=label)  # a bundle whose ban index does not match its bans is refused
        check_builtins(members, label=label)  # a wasm build needing built-ins the agents lack is refused
        check_data(members, label=label)  # and one whose policy data has a mistake (file, line, path)
    except InvalidInputError:
        raise
    except PyagentError as err:  # (a module that is no wasm, or runs past its bound: the bundle's fault)
        raise InvalidInputError(str(err)) from err
    try:
        manifest = json.loads(members.get(".manifest", b"{}"))
    except (ValueError, RecursionError) as err:
        raise InvalidInputError(f"{label}: .manifest is not JSON") from err
    if not isinstance(manifest, dict):
        raise InvalidInputError(f"{label}: .manifest is not a JSON object")
    try:
        check_roots(members, label)  # roots that OPA and the agents would refuse at activation
    except PyagentError as err:
        raise InvalidInputError(str(err)) from err
    if verification is None:  # the serial orders revisions whether or not a key checks it
        serial = _manifest_serial(manifest, label)
    revision = manifest.get("revision")
    if not isinstance(revision, str) or not revision:
        raise InvalidInputError(
            f"{label}: the bundle has no revision; build it with `pyagent policy bundle --revision`"
        )
    if len(revision) > ID_LENGTH or any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in revision):
        raise InvalidInputError(  # (kept in a column of that bound, and shown on every dashboard page)
            f"{label}: the revision must be 1-{ID_LENGTH} characters without control characters, got "
            f"{shorten(repr(revision), 80)}"
        )
    target = "wasm" if "policy.wasm" in members or manifest.get("wasm") else "rego"
    if target == "rego" and not any(path.endswith(".rego") for path in members):
        raise InvalidInputError(
            f"{label}: neither a rego bundle (no .rego file) nor a wasm bundle (no policy.wasm)"
        )
    return target, revision, serial, SIGNATURES_FILE in members


def _manifest_serial(manifest: dict[str, Any], label: str) -> int | None:
    """The build serial ``metadata.pyagent.serial`` of an unverified manifest (None when absent)."""
    serial = pyagent_metadata(manifest).get("serial")
    if serial is None:
        return None
    if not is_serial(serial):
        raise InvalidInputError(
            f"{label}: .manifest metadata.pyagent.serial {shorten(repr(serial), 60)}: expected an integer "
            f"from 0 to {MAX_SERIAL}"
        )
    return serial
