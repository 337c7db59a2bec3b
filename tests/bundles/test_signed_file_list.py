"""The signed payload's file list and the key a signature names, each refusal by its own kind: a name
listed twice or the signature file signing itself (either would let one entry vouch for other bytes),
digests compared whatever their hex case, a serial that is not an integer, and a signature naming a key
that is not configured (``[keys]`` without ``signing``: the key is chosen as OPA chooses it)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyagent.bundles.constants import SIGNATURES_FILE
from pyagent.bundles.digest import file_digest
from pyagent.bundles.errors import BundleRejected, RejectionKind
from pyagent.bundles.verify import VerificationConfig, signer_config, verify_members
from tests.bundles import forge
from tests.bundles.conftest import Keys

LABEL = "crafted.tar.gz"
FILES = {
    ".manifest": json.dumps({"revision": "r1", "metadata": {"pyagent": {"serial": 7}}}).encode(),
    "data.json": b'{"pyagent": {"bans": {}}}',
}


def _entry(name: str, content: bytes) -> dict[str, str]:
    return {"name": name, "hash": file_digest(name, content, "SHA-256"), "algorithm": "SHA-256"}


def _honest_list(files: dict[str, bytes]) -> list[dict[str, str]]:
    return [_entry(name, content) for name, content in files.items()]


def _signed(
    keys: Keys, files: dict[str, bytes], listed: list[dict[str, str]], **header: Any
) -> dict[str, bytes]:
    token = forge.forge({"alg": "RS256", **header}, {"files": listed}, forge.rsa_signer(keys.signer.key))
    return {**files, SIGNATURES_FILE: forge.signatures_json(token)}


@pytest.fixture
def config(keys: Keys) -> VerificationConfig:
    return VerificationConfig.from_key_file(keys.signer.public, algorithm="RS256")


def _refusal(files: dict[str, bytes], config: VerificationConfig) -> BundleRejected:
    with pytest.raises(BundleRejected) as refused:
        verify_members(files, config, label=LABEL)
    return refused.value


def test_the_honest_list_verifies(keys: Keys, config: VerificationConfig) -> None:
    verified = verify_members(_signed(keys, FILES, _honest_list(FILES)), config, label=LABEL)
    assert (verified.serial, verified.revision) == (7, "r1")


def test_upper_case_hex_digests_verify_as_the_same_digests(keys: Keys, config: VerificationConfig) -> None:
    upper = [{**entry, "hash": entry["hash"].upper()} for entry in _honest_list(FILES)]
    verified = verify_members(_signed(keys, FILES, upper), config, label=LABEL)
    assert (
        verified.content_digest
        == verify_members(_signed(keys, FILES, _honest_list(FILES)), config, label=LABEL).content_digest
    )


def test_a_name_listed_twice_is_refused(keys: Keys, config: VerificationConfig) -> None:
    twice = [*_honest_list(FILES), _entry("data.json", b'{"pyagent": {"exemptions": {}}}')]
    err = _refusal(_signed(keys, FILES, twice), config)
    assert (err.kind, str(err)) == (
        RejectionKind.MALFORMED_SIGNATURE,
        f"bundle {LABEL}: rejected (malformed-signature): data.json: listed twice in the signature",
    )


def test_the_signature_file_cannot_sign_itself(keys: Keys, config: VerificationConfig) -> None:
    itself = [*_honest_list(FILES), _entry(SIGNATURES_FILE, b"{}")]
    err = _refusal(_signed(keys, FILES, itself), config)
    assert (err.kind, str(err)) == (
        RejectionKind.MALFORMED_SIGNATURE,
        f"bundle {LABEL}: rejected (malformed-signature): {SIGNATURES_FILE}: cannot sign itself",
    )


@pytest.mark.parametrize(
    "serial", [True, "7", 7.0, -1, 2**63], ids=["true", "string", "float", "negative", "2^63"]
)
def test_a_serial_that_is_no_integer_in_range_is_refused(
    keys: Keys, config: VerificationConfig, serial: object
) -> None:
    manifest = json.dumps({"revision": "r1", "metadata": {"pyagent": {"serial": serial}}}).encode()
    files = {**FILES, ".manifest": manifest}
    err = _refusal(_signed(keys, files, _honest_list(files)), config)
    assert err.kind is RejectionKind.UNVERSIONED
    assert "the signed .manifest has no build serial (metadata.pyagent.serial, an integer from 0 to" in str(
        err
    )


def test_the_key_a_signature_names_is_the_one_used(keys: Keys, config: VerificationConfig) -> None:
    other = VerificationConfig.from_key_file(keys.attacker.public, algorithm="RS256")
    files = _signed(keys, FILES, _honest_list(FILES), kid="signer")
    assert signer_config(files, {"attacker": other, "signer": config}, label=LABEL) is config
    unnamed = _signed(keys, FILES, _honest_list(FILES))
    assert signer_config(unnamed, {"signer": config}, label=LABEL) is config  # the one key configured


@pytest.mark.parametrize(
    ("header", "configured", "detail"),
    [
        ({"kid": "stranger"}, ("signer",), 'the signature names key "stranger"; configured keys: signer'),
        ({}, ("attacker", "signer"), "the signature names no key; configured keys: attacker, signer"),
    ],
    ids=["unknown-key", "no-key-among-two"],
)
def test_a_signature_naming_no_configured_key_is_refused(
    keys: Keys, config: VerificationConfig, header: dict[str, str], configured: tuple[str, ...], detail: str
) -> None:
    files = _signed(keys, FILES, _honest_list(FILES), **header)
    with pytest.raises(BundleRejected) as refused:
        signer_config(files, dict.fromkeys(configured, config), label=LABEL)
    assert (refused.value.kind, str(refused.value)) == (
        RejectionKind.WRONG_KEY_ID,
        f"bundle {LABEL}: rejected (wrong-key-id): {detail}",
    )
