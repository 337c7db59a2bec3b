"""The attacker's toolbox: rewrite a bundle archive, forge or re-sign its ``.signatures.json``.

Everything here works on the archive bytes the way someone with write access to a bundle (a bundle
server, a mirror, a file:// path) could, with no access to the signing key unless a test hands one in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import tarfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from pyagent.bundles.digest import file_digest

Members = list[tuple[str, bytes]]
SIGNATURES = "/.signatures.json"


def read_tar(path: Path) -> Members:
    """Every regular member as (name as stored, bytes), in archive order."""
    out: Members = []
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            if member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None
                out.append((member.name, handle.read()))
    return out


def write_tar(path: Path, members: Iterable[tuple[str, bytes]]) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as archive:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o600
            archive.addfile(info, io.BytesIO(content))
    path.write_bytes(buffer.getvalue())
    return path


def member(members: Members, name: str) -> bytes:
    return next(content for stored, content in members if stored.lstrip("/") == name.lstrip("/"))


def replaced(members: Members, name: str, content: bytes) -> Members:
    return [(n, content if n.lstrip("/") == name.lstrip("/") else c) for n, c in members]


def without(members: Members, name: str) -> Members:
    return [(n, c) for n, c in members if n.lstrip("/") != name.lstrip("/")]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_of(members: Members) -> str:
    return str(json.loads(member(members, SIGNATURES))["signatures"][0])


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return json.loads(unb64(header)), json.loads(unb64(payload))


def signatures_json(*tokens: str, extra: Mapping[str, Any] | None = None) -> bytes:
    return json.dumps({"signatures": list(tokens), **(extra or {})}, indent=1).encode()


def file_list(members: Members) -> list[dict[str, str]]:
    """The signed file list an honest signer would write for ``members`` (SHA-256, OPA's digests)."""
    return [
        {
            "name": name.lstrip("/"),
            "hash": file_digest(name.lstrip("/"), content, "SHA-256"),
            "algorithm": "SHA-256",
        }
        for name, content in members
        if name != SIGNATURES
    ]


Signer = Callable[[bytes], bytes]


def forge(header: Mapping[str, Any], payload: Mapping[str, Any], sign: Signer) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode('ascii')))}"


def rsa_signer(key: rsa.RSAPrivateKey, alg: str = "RS256") -> Signer:
    factories: dict[str, Callable[[], hashes.HashAlgorithm]] = {
        "256": hashes.SHA256,
        "384": hashes.SHA384,
        "512": hashes.SHA512,
    }
    digest = factories[alg[2:]]()
    if alg.startswith("PS"):
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.DIGEST_LENGTH)
        return lambda data: key.sign(data, pss, digest)
    return lambda data: key.sign(data, padding.PKCS1v15(), digest)


def ec_signer(key: ec.EllipticCurvePrivateKey) -> Signer:
    size = (key.curve.key_size + 7) // 8

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    return sign


def hmac_signer(secret: bytes) -> Signer:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def resigned(members: Members, header: Mapping[str, Any], sign: Signer, **claims: Any) -> Members:
    """``members`` with a fresh ``.signatures.json`` over their current contents."""
    body = without(members, SIGNATURES)
    token = forge(header, {"files": file_list(body), **claims}, sign)
    return [*body, (SIGNATURES, signatures_json(token))]
