"""Verifying the compact JWS (JWT) in a bundle's ``.signatures.json`` with a public key, through PyJWT.

Only public-key algorithms are accepted, and only the one algorithm configured with the key: PyJWT is
given that single algorithm, so the token's ``alg`` header never chooses how it is verified. That
closes the classic confusions: ``none`` (no signature at all), ``HS256`` with the public key's PEM used
as the HMAC secret, and a switch to another family. The key's type and size must fit the algorithm
(RSA of at least 2048 bits for RS*/PS*; the matching NIST curve for ES*), checked here when the key is
configured.

What PyJWT checks on a token: canonical base64url in every part, a JSON-object header and payload,
``crit`` (refused: no extension is understood here), ``b64: false`` (refused: no detached payload),
``kid`` a string, the signature (ES* as raw ``r || s`` of the curve's size; PS* with a salt as long as
the hash, RFC 7518 section 3.5), and the ``files`` claim present. The payload is decoded only after
the signature has been checked.

What it is told not to check: ``exp``, ``nbf``, ``iat``, ``aud``, ``iss``. OPA ignores them in a bundle
signature (``v1/bundle/verify.go``), so a bundle OPA accepts is one the agent accepts; freshness is the
signed build serial's job (:mod:`pyagent.bundles.state`), and an ``iat`` compared with the device's
clock would refuse a fresh bundle on a device whose clock runs late. Key id and scope are compared by
:mod:`pyagent.bundles.verify`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyagent.bundles.constants import PUBLIC_KEY_ALGORITHMS
from pyagent.errors import InvalidInputError
from pyagent.userfile import read_limited

__all__ = [
    "PUBLIC_KEY_ALGORITHMS",
    "JwsError",
    "VerificationKey",
    "load_verification_key",
    "verify_compact",
]

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ES256": ec.SECP256R1,
    "ES384": ec.SECP384R1,
    "ES512": ec.SECP521R1,
}
_ALG_BY_CURVE = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
MIN_RSA_BITS = 2048
#: The claims a bundle signature needs: the signed file list. ``scope`` and ``keyid`` are optional.
REQUIRED_CLAIMS = ("files",)
_OPTIONS: jwt.types.Options = {
    "require": list(REQUIRED_CLAIMS),
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
}
_DECODER = jwt.PyJWT()

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


#: The most a PEM key (or certificate chain) file is read: a 16384-bit RSA key is under 13 KiB.
MAX_PEM_BYTES = 1024 * 1024


def read_pem(path: str | os.PathLike[str], *, what: str) -> bytes:
    """The bytes of a key file, at most :data:`MAX_PEM_BYTES` (``/dev/zero`` given as a key must not
    fill the memory); unreadable or larger is an :class:`InvalidInputError` naming the file as ``what``."""
    return read_limited(path, what=what, limit=MAX_PEM_BYTES, regular_only=False)


def load_verification_key(path: str | os.PathLike[str], algorithm: str | None = None) -> VerificationKey:
    """The PEM public key (or certificate) at ``path``; ``algorithm`` defaults to RS256 for RSA keys
    (as OPA's) and to the curve's ES algorithm for EC keys. Unusable keys are :class:`InvalidInputError`.
    """
    label = str(path)
    pem = read_pem(path, what="verification key")
    return parse_verification_key(pem, algorithm, source=label)


def parse_verification_key(pem: bytes, algorithm: str | None = None, *, source: str = "") -> VerificationKey:
    """Like :func:`load_verification_key`, from the PEM bytes."""
    label = source or "<pem>"
    if algorithm is not None and algorithm not in PUBLIC_KEY_ALGORITHMS:  # (an HMAC secret is no PEM:
        check_key_algorithm(None, algorithm, f"verification key {label}")  # say why it is refused)
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
            + (
                " (HMAC would put a signing secret on every device)"
                if algorithm.upper().startswith("HS")
                else ""
            )
        )
    if algorithm.startswith(("RS", "PS")):
        if not isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
            raise InvalidInputError(f"{label}: {algorithm} needs an RSA key")
        if key.key_size < MIN_RSA_BITS:
            raise InvalidInputError(f"{label}: RSA key of {key.key_size} bits; at least {MIN_RSA_BITS}")
        return
    curve = _CURVES[algorithm]
    if not isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) or not isinstance(
        key.curve, curve
    ):
        raise InvalidInputError(f"{label}: {algorithm} needs an EC key on curve {curve.name}")


def verify_compact(token: str, key: VerificationKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (header, payload) of a compact JWS whose signature ``key`` verifies; else :class:`JwsError`.

    PyJWT parses, verifies (only with ``key.algorithm``) and only then decodes the payload.
    """
    if not isinstance(token, str) or token.count(".") != 2:
        raise JwsError("malformed", "the JWT is not three dot-separated parts")
    try:
        decoded = _DECODER.decode_complete(token, key.key, algorithms=[key.algorithm], options=_OPTIONS)
    except jwt.InvalidAlgorithmError:
        alg = jwt.get_unverified_header(token).get("alg")
        shown = json.dumps(alg) if alg is not None else "missing"
        raise JwsError("algorithm", f"JWT alg {shown} refused: only {key.algorithm} is configured") from None
    except jwt.InvalidSignatureError:
        raise JwsError("signature", f"JWT signature does not verify with {key.algorithm} key") from None
    except jwt.MissingRequiredClaimError as err:
        raise JwsError("malformed", f"JWT payload has no {err.claim!r} claim") from None
    except jwt.InvalidTokenError as err:
        if _unencoded_payload(token):  # PyJWT's words for it name its own API (detached_payload)
            raise JwsError("malformed", _UNENCODED) from None
        raise JwsError("malformed", f"malformed JWT: {err}") from None
    return decoded["header"], decoded["payload"]


_UNENCODED = "JWT header b64: false refused: the payload must be in the token"


def unverified_header(token: str) -> dict[str, Any]:
    """The header of a compact JWS, its signature NOT checked (to choose the key); else :class:`JwsError`."""
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.InvalidTokenError, ValueError, RecursionError) as err:  # (PyJWT lets deep nesting out)
        raise JwsError("malformed", f"malformed JWT: {type(err).__name__}") from None
    return header if isinstance(header, dict) else {}


def unverified_payload(token: str) -> dict[str, Any]:
    """The payload of a compact JWS, its signature NOT checked (for what a bundle says of itself
    where no key is configured); else :class:`JwsError`."""
    if not isinstance(token, str) or token.count(".") != 2 or _unencoded_payload(token):
        raise JwsError("malformed", "the JWT is not three dot-separated parts with its payload")
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except (jwt.InvalidTokenError, ValueError, RecursionError) as err:
        raise JwsError("malformed", f"malformed JWT: {type(err).__name__}") from None
    if not isinstance(payload, dict):
        raise JwsError("malformed", "the JWT payload is not an object")
    return payload


def _unencoded_payload(token: str) -> bool:
    try:
        return jwt.get_unverified_header(token).get("b64") is False
    except jwt.InvalidTokenError:
        return False
