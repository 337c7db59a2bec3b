"""Verifying the compact JWS (JWT) in a bundle's ``.signatures.json`` with a public key.

Only public-key algorithms are accepted, and only the one algorithm configured with the key: the
token's ``alg`` header never chooses how it is verified. That closes the classic confusions: ``none``
(no signature at all), ``HS256`` with the public key's PEM used as the HMAC secret, and a switch to
another family. The key's type and size must fit the algorithm (RSA of at least 2048 bits for
RS*/PS*; the matching NIST curve for ES*).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from pyagent.bundles.constants import PUBLIC_KEY_ALGORITHMS
from pyagent.errors import InvalidInputError

__all__ = [
    "PUBLIC_KEY_ALGORITHMS",
    "JwsError",
    "VerificationKey",
    "load_verification_key",
    "verify_compact",
]

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_CURVES: dict[str, tuple[type[ec.EllipticCurve], int]] = {
    "ES256": (ec.SECP256R1, 32),
    "ES384": (ec.SECP384R1, 48),
    "ES512": (ec.SECP521R1, 66),
}
_ALG_BY_CURVE = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
MIN_RSA_BITS = 2048
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
#: Header parameters that would make the token mean something this verifier does not implement.
_UNSUPPORTED_HEADERS = ("crit", "b64", "zip")

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class JwsError(Exception):
    """The token is refused. ``reason`` is ``malformed``, ``algorithm`` or ``signature``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class VerificationKey:
    """A public key and the one JWS algorithm it verifies."""

    key: PublicKey
    algorithm: str
    source: str = ""


def load_verification_key(path: str | os.PathLike[str], algorithm: str | None = None) -> VerificationKey:
    """The PEM public key (or certificate) at ``path``; ``algorithm`` defaults to RS256 for RSA keys
    (as OPA's) and to the curve's ES algorithm for EC keys. Unusable keys are :class:`InvalidInputError`.
    """
    label = str(path)
    try:
        pem = Path(path).read_bytes()
    except OSError as err:
        raise InvalidInputError(f"verification key {label}: cannot read: {err.strerror or err}") from err
    return parse_verification_key(pem, algorithm, source=label)


def parse_verification_key(pem: bytes, algorithm: str | None = None, *, source: str = "") -> VerificationKey:
    """Like :func:`load_verification_key`, from the PEM bytes."""
    label = source or "<pem>"
    if b"PRIVATE KEY" in pem:
        raise InvalidInputError(f"verification key {label}: is a private key; give the public key")
    try:
        if b"BEGIN CERTIFICATE" in pem:
            key: Any = x509.load_pem_x509_certificate(pem).public_key()
        else:
            key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as err:
        raise InvalidInputError(f"verification key {label}: not a PEM public key or certificate") from err
    if isinstance(key, rsa.RSAPublicKey):
        alg = algorithm or "RS256"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        alg = algorithm or _ALG_BY_CURVE.get(key.curve.name, "")
    else:
        raise InvalidInputError(f"verification key {label}: only RSA and EC (P-256/384/521) keys work")
    check_key_algorithm(key, alg, label)
    return VerificationKey(key=key, algorithm=alg, source=label)


def check_key_algorithm(key: Any, algorithm: str, label: str) -> None:
    """Refuse an algorithm that is not public-key, or that does not fit the key."""
    if algorithm not in PUBLIC_KEY_ALGORITHMS:
        raise InvalidInputError(
            f"{label}: algorithm {algorithm!r} refused: use one of {', '.join(PUBLIC_KEY_ALGORITHMS)}"
            " (HMAC would put a signing secret on every device)"
        )
    if algorithm.startswith(("RS", "PS")):
        if not isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
            raise InvalidInputError(f"{label}: {algorithm} needs an RSA key")
        if key.key_size < MIN_RSA_BITS:
            raise InvalidInputError(f"{label}: RSA key of {key.key_size} bits; at least {MIN_RSA_BITS}")
        return
    curve, _ = _CURVES[algorithm]
    if not isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) or not isinstance(
        key.curve, curve
    ):
        raise InvalidInputError(f"{label}: {algorithm} needs an EC key on curve {curve.name}")


def verify_compact(token: str, key: VerificationKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (header, payload) of a compact JWS whose signature ``key`` verifies; else :class:`JwsError`.

    The payload is decoded only after the signature has been checked.
    """
    if not isinstance(token, str) or token.count(".") != 2:
        raise JwsError("malformed", "the JWT is not three dot-separated parts")
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = _json_object(_b64decode(header_b64, "header"), "header")
    alg = header.get("alg")
    if alg != key.algorithm:
        shown = json.dumps(alg) if alg is not None else "missing"
        raise JwsError("algorithm", f"JWT alg {shown} refused: only {key.algorithm} is configured")
    for name in _UNSUPPORTED_HEADERS:
        if name in header:
            raise JwsError("malformed", f"JWT header parameter {name!r} is not supported")
    signature = _b64decode(signature_b64, "signature")
    signed = f"{header_b64}.{payload_b64}".encode("ascii")
    try:
        _verify(key, signature, signed)
    except InvalidSignature:
        raise JwsError("signature", f"JWT signature does not verify with {key.algorithm} key") from None
    payload = _json_object(_b64decode(payload_b64, "payload"), "payload")
    return header, payload


def _verify(key: VerificationKey, signature: bytes, signed: bytes) -> None:
    alg = key.algorithm
    digest = _HASHES[alg[2:]]()
    if alg.startswith("ES"):
        _, size = _CURVES[alg]
        if len(signature) != 2 * size or not isinstance(key.key, ec.EllipticCurvePublicKey):
            raise InvalidSignature
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        key.key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(digest))
        return
    if not isinstance(key.key, rsa.RSAPublicKey):
        raise InvalidSignature
    if alg.startswith("PS"):
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO)
        key.key.verify(signature, signed, pss, digest)
    else:
        key.key.verify(signature, signed, padding.PKCS1v15(), digest)


def _b64decode(part: str, what: str) -> bytes:
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        raise JwsError("malformed", f"JWT {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as err:
        raise JwsError("malformed", f"JWT {what} is not base64url") from err


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeError, ValueError, RecursionError) as err:
        raise JwsError("malformed", f"JWT {what} is not JSON") from err
    if not isinstance(value, dict):
        raise JwsError("malformed", f"JWT {what} is not a JSON object")
    return value
