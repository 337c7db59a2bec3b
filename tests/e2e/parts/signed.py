"""The loop's signed bundles: r1 and r2 in both builds, a tampered and an unsigned copy of r2."""

from __future__ import annotations

import io
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pyagent.bundles.build import build_signed_bundle
from tests.agent.plugins.conftest import tamper
from tests.e2e.parts.names import TARGETS
from tests.helpers.opa_server import POLICY_DIRS


@dataclass(frozen=True)
class Signed:
    public_pem: str
    rego: dict[str, Path]
    wasm: dict[str, Path]
    """r1 (serial 1) and r2 (serial 2), signed with a key made for this test."""
    tampered: Path
    """r2's wasm build with one byte of its data changed after signing."""
    unsigned: Path
    """r2's wasm build with its ``/.signatures.json`` taken out."""


def strip_signatures(source: Path, target: Path) -> Path:
    out = io.BytesIO()
    with tarfile.open(source, "r:gz") as old, tarfile.open(fileobj=out, mode="w:gz") as new:
        for member in old:
            if member.name.lstrip("/") == ".signatures.json":
                continue
            content = old.extractfile(member) if member.isfile() else None
            new.addfile(member, io.BytesIO(content.read()) if content is not None else None)
    target.write_bytes(out.getvalue())
    return target


def make_bundles(directory: Path) -> Signed:
    directory.mkdir()
    key = rsa.generate_private_key(65537, 2048)
    private = directory / "signer.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def build(job: tuple[str, int, str]) -> tuple[str, int, str, Path]:
        revision, serial, target = job
        out = directory / f"{target}-{revision}.tar.gz"
        build_signed_bundle(
            POLICY_DIRS, out, signing_key=private, revision=revision, serial=serial, target=target
        )
        return revision, serial, target, out

    jobs = [(revision, serial, target) for serial, revision in ((1, "r1"), (2, "r2")) for target in TARGETS]
    built: dict[str, dict[str, Path]] = {target: {} for target in TARGETS}
    with ThreadPoolExecutor(len(jobs)) as pool:  # opa build, four times at once
        for revision, _, target, out in pool.map(build, jobs):
            built[target][revision] = out
    wasm = built["wasm"]
    return Signed(
        public_pem=public.decode(),
        rego=built["rego"],
        wasm=wasm,
        tampered=tamper(wasm["r2"], directory / "tampered.tar.gz"),
        unsigned=strip_signatures(wasm["r2"], directory / "unsigned.tar.gz"),
    )
