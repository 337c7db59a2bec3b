"""Building a signed policy bundle with the pinned ``opa build``.

``opa build`` signs only in bundle mode (``-b``), where each path is a bundle root. The policy
directories (``policies/rego``, ``policies/data``) are therefore copied into one staging root, where a
``.manifest`` carrying the build serial is written::

    {"revision": "<--revision>", "metadata": {"pyagent": {"serial": <int>, "built_at": <Unix seconds>}}}

``opa build -b --signing-key`` then compiles, writes ``/.signatures.json`` and signs every file,
``.manifest`` included, so the serial is covered by the signature. Extra JWT claims (``iat``, and
``scope`` when a scope is given) go in through ``--claims-file``; ``opa build --scope`` only applies to
verification. The output is verified with the public half of the signing key before it is reported
as written, so a bundle this command writes is one the embedded engine accepts.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyagent.bundles.constants import TARGETS
from pyagent.bundles.jws import VerificationKey, check_key_algorithm, read_pem
from pyagent.bundles.verify import VerificationConfig, VerifiedBundle, verify_members
from pyagent.engines.base import ENTRYPOINT
from pyagent.engines.wasm.bundle import read_archive, read_members
from pyagent.engines.wasm.capabilities import check_members
from pyagent.errors import InvalidInputError
from pyagent.policy import index
from pyagent.policy.opa_tool import OpaToolError, run_opa
from pyagent.policy.staging import stage_root

__all__ = ["TARGETS", "SignedBuild", "build_signed_bundle", "build_unsigned_bundle", "default_serial"]


@dataclass(frozen=True)
class SignedBuild:
    """A signed bundle written by :func:`build_signed_bundle`."""

    output: Path
    serial: int
    revision: str
    built_at: int
    algorithm: str
    scope: str | None
    verified: VerifiedBundle


def default_serial() -> int:
    """The build serial when none is given: milliseconds since the Unix epoch (monotonic across
    builds on a machine with a sane clock; give ``--serial`` from CI for a counter you control)."""
    return time.time_ns() // 1_000_000


def build_signed_bundle(
    dirs: Sequence[str | Path],
    output: str | Path,
    *,
    signing_key: str | Path,
    algorithm: str = "RS256",
    revision: str | None = None,
    serial: int | None = None,
    scope: str | None = None,
    target: str = "wasm",
    timeout: float = 600.0,
) -> SignedBuild:
    """Compile ``dirs`` into a signed bundle at ``output``; raise on bad input or a failed build."""
    _check_target(target)
    if serial is None:
        serial = default_serial()
    if serial < 0:
        raise InvalidInputError(f"--serial {serial}: must be a non-negative integer")
    public = _public_key(Path(signing_key), algorithm)
    built_at = int(time.time())
    out = Path(output).resolve()
    _make_parent(out)
    with _staging(dirs, revision) as stage:
        manifest: dict[str, object] = {"metadata": {"pyagent": {"serial": serial, "built_at": built_at}}}
        if revision:
            manifest["revision"] = revision
        (stage / ".manifest").write_text(json.dumps(manifest), encoding="utf-8")
        claims: dict[str, object] = {"iat": built_at}
        if scope:
            claims["scope"] = scope
        claims_file = stage.parent / "claims.json"
        claims_file.write_text(json.dumps(claims), encoding="utf-8")
        signing = [
            "--signing-key",
            str(Path(signing_key).resolve()),
            "--signing-alg",
            algorithm,
            "--claims-file",
            str(claims_file),
        ]
        _opa_build(stage, target, [*signing, "-o", str(out)], timeout=timeout, dirs=dirs)
    config = VerificationConfig(public, scope=scope or None)
    with _removed_on_failure(out):  # never leave a bundle behind that the agents would refuse
        members = read_members(read_archive(out), label=str(out))
        verified = verify_members(members, config, label=str(out))
        if verified.serial != serial:  # pragma: no cover - opa build keeps the staged manifest
            raise OpaToolError(f"{out}: opa build dropped the build serial from .manifest")
        check_members(members, label=str(out), dirs=dirs)  # built-ins the agents lack: refused now
        _check_policy_data(members, target, dirs)
    return SignedBuild(out, serial, revision or "", built_at, algorithm, scope or None, verified)


def build_unsigned_bundle(
    dirs: Sequence[str | Path],
    output: str | Path,
    *,
    revision: str | None = None,
    target: str = "wasm",
    timeout: float = 600.0,
) -> Path:
    """Compile ``dirs`` into an unsigned bundle at ``output`` from the same staging root as a signed
    one, so that the bundle's file names are relative to the policy roots, never this machine's paths."""
    _check_target(target)
    out = Path(output).resolve()
    _make_parent(out)
    with _staging(dirs, revision) as stage:
        extra = [*(["--revision", revision] if revision else []), "-o", str(out)]
        _opa_build(stage, target, extra, timeout=timeout, dirs=dirs)
    with _removed_on_failure(out):  # the agents would refuse it: refused before rollout
        members = read_members(read_archive(out), label=str(out))
        check_members(members, label=str(out), dirs=dirs)
        _check_policy_data(members, target, dirs)
    return out


_DECISION_PACKAGE = re.compile(index.DECISION_PACKAGE.encode(), re.MULTILINE)


def _check_policy_data(members: dict[str, bytes], target: str, dirs: Sequence[str | Path]) -> None:
    """Refuse a bundle of pyagent's policy (the compiled decision, or its Rego) without its data: it
    would decide nothing, every device an error (``missing_policy_data``). Other policies pass."""
    decides = target == "wasm" or any(
        name.endswith(".rego") and _DECISION_PACKAGE.search(content) for name, content in members.items()
    )
    if decides and not index.has_policy_data(json.loads(members.get("data.json", b"{}"))):
        raise InvalidInputError(f"{', '.join(map(str, dirs))}: {index.NO_POLICY_DATA}")


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise InvalidInputError(f"--target {target!r}: expected one of {', '.join(TARGETS)}")


@contextlib.contextmanager
def _staging(dirs: Sequence[str | Path], revision: str | None) -> Iterator[Path]:
    """A temporary bundle root (``staging.stage_root``); its parent is free for the build's own files."""
    with tempfile.TemporaryDirectory(prefix="pyagent-bundle-") as tmp:
        yield stage_root(dirs, Path(tmp) / "bundle", revision)


def _opa_build(
    stage: Path, target: str, extra: list[str], *, timeout: float, dirs: Sequence[str | Path]
) -> None:
    """``opa build -b`` of the staging root, in it (so the bundle's names are relative to it). Its
    errors name the staged copies: they are shown with the policy directories' paths instead."""
    args = ["build", "-b", "-t", target, "--ignore", "*_test.rego"]
    if target == "wasm":
        args += ["-e", ENTRYPOINT]
    done = run_opa([*args, *extra, "."], cwd=stage, timeout=timeout)
    if done.returncode != 0:
        raise InvalidInputError(f"opa build failed: {_source_paths(done.problem(), dirs)}")


_STAGED_PATH = re.compile(r"(?<![\w/.-])(?:\./)?([\w./-]+\.(?:rego|json|ya?ml)):(?=\d)")


def _source_paths(problem: str, dirs: Sequence[str | Path]) -> str:
    """``problem`` with each staged file's path (``pyagent/lib/x.rego:3``) as the source's (``DIR/...``)."""

    def source(match: re.Match[str]) -> str:
        for directory in dirs:
            if (Path(directory) / match[1]).is_file():
                return f"{Path(directory) / match[1]}:"
        return match[0]

    return _STAGED_PATH.sub(source, problem)


@contextlib.contextmanager
def _removed_on_failure(out: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        out.unlink(missing_ok=True)
        raise


def _public_key(path: Path, algorithm: str) -> VerificationKey:
    label = f"signing key {path}"
    pem = read_pem(path, what="signing key")
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as err:
        reason = re.sub(r"\s*See https?://\S+ for more details\.", "", str(err))  # (cryptography's FAQ link)
        raise InvalidInputError(f"{label}: not an unencrypted PEM private key ({reason})") from err
    if not isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise InvalidInputError(f"{label}: only RSA and EC keys can sign bundles")
    check_key_algorithm(private, algorithm, label)
    return VerificationKey(private.public_key(), algorithm, f"public half of {path}")


def _make_parent(out: Path) -> None:
    """The directory ``out`` goes in, made when missing; one that cannot be (a file is in the way) is a
    usage error naming it."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InvalidInputError(f"-o {out}: cannot make its directory {out.parent}: {err.strerror}") from None
