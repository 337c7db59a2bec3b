"""The JWS verifier on its own: which keys and algorithms may be configured, and which tokens pass."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pyagent.bundles.jws import JwsError, load_verification_key, parse_verification_key, verify_compact
from pyagent.errors import InvalidInputError
from tests.bundles import forge
from tests.bundles.conftest import Keys

PAYLOAD = {"files": [{"name": "data.json", "hash": "00", "algorithm": "SHA-256"}]}


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_defaults_follow_the_key(keys: Keys) -> None:
    assert load_verification_key(keys.signer.public).algorithm == "RS256"
    assert load_verification_key(keys.signer_ec.public).algorithm == "ES256"
    assert parse_verification_key(_pem(ec.generate_private_key(ec.SECP384R1()))).algorithm == "ES384"


@pytest.mark.parametrize(
    ("algorithm", "message"),
    [
        (
            "HS256",
            r"algorithm 'HS256' refused: use one of RS256, .* \(HMAC would put a signing secret on every"
            r" device\)",
        ),
        ("none", r"algorithm 'none' refused"),
        ("ES256", r"ES256 needs an EC key on curve secp256r1"),
    ],
)
def test_unusable_algorithms_cannot_be_configured(keys: Keys, algorithm: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        load_verification_key(keys.signer.public, algorithm)


def test_an_hmac_secret_as_opa_configures_it_is_refused_for_its_algorithm() -> None:
    """OPA's ``keys.NAME: {algorithm: HS256, key: <secret>}``: the reason is HMAC, not the secret's format."""
    with pytest.raises(InvalidInputError) as err:
        parse_verification_key(b"supersecretsharedkey", "HS256", source="keys.signer")
    assert str(err.value) == (
        "verification key keys.signer: algorithm 'HS256' refused: use one of RS256, RS384, RS512, PS256, "
        "PS384, PS512, ES256, ES384, ES512 (HMAC would put a signing secret on every device)"
    )


def test_unusable_keys_cannot_be_configured(keys: Keys, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"is a private key; give the public key$"):
        load_verification_key(keys.signer.private)
    with pytest.raises(InvalidInputError, match=r"RSA key of 1024 bits; at least 2048$"):
        parse_verification_key(_pem(rsa.generate_private_key(65537, 1024)))
    with pytest.raises(InvalidInputError, match=r"ES256 needs an EC key on curve secp256r1$"):
        parse_verification_key(_pem(ec.generate_private_key(ec.SECP384R1())), "ES256")
    with pytest.raises(InvalidInputError, match=r"not a PEM public key or certificate$"):
        parse_verification_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(InvalidInputError, match=r"absent.pem: verification key not found$"):
        load_verification_key(tmp_path / "absent.pem")


def test_a_certificate_gives_its_public_key(keys: Keys) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyagent bundle signing")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(keys.signer.key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(keys.signer.key, hashes.SHA256())
    )
    key = parse_verification_key(cert.public_bytes(serialization.Encoding.PEM))
    token = forge.forge({"alg": "RS256"}, PAYLOAD, forge.rsa_signer(keys.signer.key))
    assert verify_compact(token, key)[1] == PAYLOAD


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"])
def test_every_rsa_algorithm_verifies(keys: Keys, alg: str) -> None:
    key = load_verification_key(keys.signer.public, alg)
    token = forge.forge({"alg": alg, "typ": "JWT"}, PAYLOAD, forge.rsa_signer(keys.signer.key, alg))
    assert verify_compact(token, key) == ({"alg": alg, "typ": "JWT"}, PAYLOAD)


_UNENCODED = r"^JWT header b64: false refused: the payload must be in the token$"
_NOT_BASE64URL = r"^malformed JWT: Invalid crypto padding$"


@pytest.mark.parametrize(
    ("token", "reason", "message"),
    [
        ("a.b", "malformed", r"^the JWT is not three dot-separated parts$"),
        ("e30.e30.", "algorithm", r"^JWT alg missing refused: only RS256 is configured$"),
        ("eyJhbGciOiJSUzI1NiJ9.e30.a+b/", "malformed", _NOT_BASE64URL),
        ("eyJhbGciOiJSUzI1NiJ9.e30.A", "malformed", _NOT_BASE64URL),
        (forge.b64(b"[1]") + ".e30.", "malformed", r"^malformed JWT: Invalid header string"),
        (forge.b64(b'{"alg":"RS256","crit":["exp"]}') + ".e30.", "malformed", r"critical extension: exp$"),
        (forge.b64(b'{"alg":"RS256","b64":false,"crit":["b64"]}') + "..", "malformed", _UNENCODED),
        (forge.b64(b'{"alg":"RS256","b64":false}') + "..", "malformed", _UNENCODED),
        (forge.b64(b'{"alg":"RS256","kid":7}') + ".e30.", "malformed", r"Key ID header parameter must be"),
        (
            forge.b64(b'{"alg":"RS256"}') + ".e30.AAAA",
            "signature",
            r"^JWT signature does not verify with RS256 key$",
        ),
    ],
    ids=[
        "two-parts",
        "no-alg",
        "not-base64url",
        "bad-length",
        "header-not-object",
        "crit",
        "unencoded-payload",
        "b64-not-critical",
        "kid-not-a-string",
        "bad-signature",
    ],
)
def test_malformed_tokens(keys: Keys, token: str, reason: str, message: str) -> None:
    """Exact texts for this module's messages; PyJWT's own (after "malformed JWT: ") by their subject."""
    with pytest.raises(JwsError, match=message) as caught:
        verify_compact(token, load_verification_key(keys.signer.public))
    assert caught.value.reason == reason


def test_es256_signatures_must_be_raw_r_and_s(keys: Keys) -> None:
    key = load_verification_key(keys.signer_ec.public)
    good = forge.forge({"alg": "ES256"}, PAYLOAD, forge.ec_signer(keys.signer_ec.key))
    assert verify_compact(good, key)[1] == PAYLOAD
    der = forge.forge(
        {"alg": "ES256"}, PAYLOAD, lambda data: keys.signer_ec.key.sign(data, ec.ECDSA(hashes.SHA256()))
    )
    with pytest.raises(JwsError, match=r"^JWT signature does not verify with ES256 key$"):
        verify_compact(der, key)


def test_the_payload_of_an_unverified_token_is_never_read(keys: Keys) -> None:
    header = forge.b64(b'{"alg":"RS256"}')
    token = f"{header}.{forge.b64(b'not json')}.{forge.b64(b'x' * 256)}"
    with pytest.raises(JwsError) as caught:
        verify_compact(token, load_verification_key(keys.signer.public))
    assert caught.value.reason == "signature"


def test_the_file_list_claim_is_required(keys: Keys) -> None:
    token = forge.forge({"alg": "RS256"}, {"scope": "eu"}, forge.rsa_signer(keys.signer.key))
    with pytest.raises(JwsError, match=r"^JWT payload has no 'files' claim$") as caught:
        verify_compact(token, load_verification_key(keys.signer.public))
    assert caught.value.reason == "malformed"


def test_time_and_audience_claims_are_not_judged_as_opa_does_not(keys: Keys) -> None:
    """OPA ignores exp, nbf, iat, aud and iss in a bundle signature; the build serial guards freshness."""
    claims = {**PAYLOAD, "exp": 1, "nbf": 4102444800, "iat": 4102444800, "aud": "elsewhere", "iss": 7}
    token = forge.forge({"alg": "RS256"}, claims, forge.rsa_signer(keys.signer.key))
    assert verify_compact(token, load_verification_key(keys.signer.public))[1] == claims
