"""Configs that the agent takes but a real OPA reads otherwise are said, once, as OPA says them: keys
without a ``signing`` table (OPA: unsigned bundles are accepted, with a warning) and a key without an
``algorithm`` that is not RSA (OPA takes RS256 and refuses it; the agent takes the key's own)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyagent.config import opakeys
from pyagent.config.agent import load_config

SERVICE = "[services.fleet]\nurl = 'https://fleet.example'\n"


@pytest.fixture(autouse=True)
def _warnings_said_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(opakeys, "_warned", set())


def _public_pem(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def test_keys_without_a_signing_table_are_said_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _public_pem(tmp_path / "signer.pem", rsa.generate_private_key(65537, 2048))
    config = tmp_path / "agent.toml"
    config.write_text(f"{SERVICE}[bundles.pyagent]\nservice = 'fleet'\n[keys.signer]\nkey_path = '{key}'\n")
    load_config(config)
    load_config(config)  # a loop reads its config again: said once
    assert capsys.readouterr().err == (
        f"pyagent: warning: {config}: keys are configured but bundles.pyagent has no signing table: a "
        "bundle without /.signatures.json is accepted, as OPA accepts it, and a signed one that names no "
        "key (as pyagent policy bundle signs) is verified with the one key where OPA refuses it (its key id "
        "is empty); add bundles.pyagent.signing to require signatures and name the key\n"
    )
    signed = tmp_path / "signed.toml"
    signed.write_text(
        f"{SERVICE}[bundles.pyagent]\nservice = 'fleet'\nsigning.keyid = 'signer'\n"
        f"[keys.signer]\nkey_path = '{key}'\n"
    )
    load_config(signed)
    assert capsys.readouterr().err == ""
    other = _public_pem(tmp_path / "other.pem", rsa.generate_private_key(65537, 2048))
    two_keys = tmp_path / "two-keys.toml"  # a signature naming no key is refused with two: nothing to say
    two_keys.write_text(
        f"{SERVICE}[bundles.pyagent]\nservice = 'fleet'\n[keys.signer]\nkey_path = '{key}'\n"
        f"[keys.other]\nkey_path = '{other}'\n"
    )
    load_config(two_keys)
    assert capsys.readouterr().err == (
        f"pyagent: warning: {two_keys}: keys are configured but bundles.pyagent has no signing table: a "
        "bundle without /.signatures.json is accepted, as OPA accepts it; add bundles.pyagent.signing to "
        "require signatures and name the key\n"
    )


def test_an_ec_key_without_an_algorithm_is_said_as_opa_would_refuse_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _public_pem(tmp_path / "signer.pem", ec.generate_private_key(ec.SECP256R1()))
    config = tmp_path / "agent.toml"
    config.write_text(
        f"{SERVICE}[bundles.pyagent]\nservice = 'fleet'\nsigning.keyid = 'signer'\n"
        f"[keys.signer]\nkey_path = '{key}'\n"
    )
    [key_config] = load_config(config).tables.keys.values()
    assert key_config.verification_key().algorithm == "ES256"
    key_config.verification_key()
    assert capsys.readouterr().err == (
        "pyagent: warning: keys.signer sets no algorithm: the agent verifies with ES256, the key's, but OPA "
        'takes RS256 and refuses this key; set algorithm = "ES256" so that an OPA can share this config\n'
    )


@pytest.mark.parametrize(
    ("generate", "algorithm"),
    [
        (lambda: rsa.generate_private_key(65537, 2048), ""),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
    ],
    ids=["rsa-default", "ec-named"],
)
def test_a_key_opa_reads_alike_is_not_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], generate: object, algorithm: str
) -> None:
    key = _public_pem(tmp_path / "signer.pem", generate())  # type: ignore[operator]
    named = f"algorithm = '{algorithm}'\n" if algorithm else ""
    config = tmp_path / "agent.toml"
    config.write_text(
        f"{SERVICE}[bundles.pyagent]\nservice = 'fleet'\nsigning.keyid = 'signer'\n"
        f"[keys.signer]\nkey_path = '{key}'\n{named}"
    )
    [key_config] = load_config(config).tables.keys.values()
    key_config.verification_key()
    assert capsys.readouterr().err == ""
