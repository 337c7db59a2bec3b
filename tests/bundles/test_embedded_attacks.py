"""The embedded engine under attack: every forged, altered or replayed bundle is refused, exactly why,
and the last accepted bundle stays in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyagent.bundles.digest import file_digest
from pyagent.bundles.errors import RejectionKind
from pyagent.bundles.state import LAST_GOOD_FILE, STATE_FILE
from pyagent.decide import decide
from tests.bundles import attacks, forge
from tests.bundles.conftest import AT, Build, Keys, load, refused, report

pytestmark = pytest.mark.usefixtures("trusting")


def _ruling(bundle: Path) -> tuple[bool, list[str]]:
    decision = decide(load(bundle), report(), at=AT)
    return decision["allow"], [v["rule"] for v in decision["violations"]]


def _state(state_dir: Path) -> tuple[bytes, bytes]:
    return (state_dir / STATE_FILE).read_bytes(), (state_dir / LAST_GOOD_FILE).read_bytes()


@pytest.fixture
def accepted(signed: Build, state_dir: Path) -> Path:
    """Serial 100 verified, loaded and recorded: the bundle every attack tries to displace."""
    good = signed(100)
    assert _ruling(good) == (False, ["eu-commission/tiktok"])
    return good


def test_a_good_signed_bundle_decides_and_is_recorded(accepted: Path, state_dir: Path) -> None:
    engine = load(accepted)
    assert engine.verified is not None
    assert (engine.verified.serial, engine.verified.revision) == (100, "2023.03.15-signed")
    recorded = json.loads((state_dir / STATE_FILE).read_text())
    assert (recorded["serial"], recorded["revision"], recorded["source"]) == (
        100,
        "2023.03.15-signed",
        str(accepted),
    )
    assert (state_dir / LAST_GOOD_FILE).read_bytes() == accepted.read_bytes()


def test_without_verification_the_tampered_bundle_would_allow_tiktok(
    accepted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the attack works on an agent that does not verify, so refusing it matters."""
    evil = attacks.tampered(accepted, tmp_path / "evil.tar.gz")
    monkeypatch.delenv("PYAGENT_BUNDLE_VERIFICATION_KEY")
    assert _ruling(evil) == (True, [])


def test_tampered_data_is_refused_and_the_last_good_bundle_kept(
    accepted: Path, tmp_path: Path, state_dir: Path
) -> None:
    before = _state(state_dir)
    evil = attacks.tampered(accepted, tmp_path / "evil.tar.gz")
    members = forge.read_tar(evil)
    signed_hash = next(
        f["hash"] for f in forge.decode(forge.token_of(members))[1]["files"] if f["name"] == "data.json"
    )
    got = file_digest("data.json", forge.member(members, "data.json"), "SHA-256")
    err = refused(evil)
    assert err.kind is RejectionKind.TAMPERED
    assert str(err) == (
        f"bundle {evil}: rejected (tampered): data.json: digest mismatch "
        f"(signed {signed_hash[:16]}..., got {got[:16]}...)"
    )
    assert _state(state_dir) == before
    assert _ruling(accepted) == (False, ["eu-commission/tiktok"])


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("policy.wasm", lambda raw: raw[:-1] + bytes([raw[-1] ^ 1])),
        ("pyagent/decision/decision.rego", lambda raw: raw + b"\n# edited\n"),
        (".manifest", lambda raw: raw.replace(b'"serial":100', b'"serial":999')),
    ],
    ids=["wasm", "rego", "manifest-serial-bump"],
)
def test_any_changed_file_is_refused(accepted: Path, tmp_path: Path, name: str, change: object) -> None:
    members = forge.read_tar(accepted)
    original = forge.member(members, name)
    altered = change(original)  # type: ignore[operator]
    assert altered != original
    evil = forge.write_tar(tmp_path / "evil.tar.gz", forge.replaced(members, name, altered))
    err = refused(evil)
    assert (err.kind, err.detail.split(": digest mismatch")[0]) == (RejectionKind.TAMPERED, name)


def test_reformatted_json_is_the_same_document(accepted: Path, tmp_path: Path) -> None:
    """OPA hashes data.json canonically: re-indenting and re-ordering keys is not tampering."""
    members = forge.read_tar(accepted)
    data = json.loads(forge.member(members, "data.json"))
    pretty = json.dumps(dict(reversed(list(data.items()))), indent=3).encode()
    same = forge.write_tar(tmp_path / "pretty.tar.gz", forge.replaced(members, "data.json", pretty))
    assert _ruling(same) == (False, ["eu-commission/tiktok"])


def test_an_extra_file_is_refused(accepted: Path, tmp_path: Path) -> None:
    evil = attacks.extra_exemption(accepted, tmp_path / "evil.tar.gz")
    err = refused(evil)
    assert str(err) == (
        f"bundle {evil}: rejected (extra-file): "
        "pyagent/exemptions/evil/data.json: not included in the bundle signature"
    )


def test_a_second_signature_file_elsewhere_is_just_an_extra_file(accepted: Path, tmp_path: Path) -> None:
    """OPA treats any path ending in signatures.json as the signature; here only /.signatures.json is."""
    members = forge.read_tar(accepted)
    evil = forge.write_tar(tmp_path / "evil.tar.gz", [*members, ("/pyagent/.signatures.json", b"{}")])
    assert str(refused(evil)).endswith(
        "(extra-file): pyagent/.signatures.json: not included in the bundle signature"
    )


def test_a_missing_file_is_refused(accepted: Path, tmp_path: Path) -> None:
    members = forge.without(forge.read_tar(accepted), "pyagent/lib/scopes/scopes.rego")
    evil = forge.write_tar(tmp_path / "evil.tar.gz", members)
    err = refused(evil)
    assert (err.kind, err.detail) == (
        RejectionKind.MISSING_FILE,
        "pyagent/lib/scopes/scopes.rego: signed but not in the bundle",
    )


def test_a_stripped_signature_is_refused_without_any_key_id(accepted: Path, tmp_path: Path) -> None:
    """GHSA-g2pf-6v5v-qcc8, issue 1: OPA before v1.21.3 required the signature only when a key id was
    configured. Here the key alone (no PYAGENT_BUNDLE_VERIFICATION_KEY_ID) makes it required."""
    evil = attacks.stripped(accepted, tmp_path / "evil.tar.gz")
    err = refused(evil)
    assert str(err) == (
        f"bundle {evil}: rejected (unsigned): no /.signatures.json, and a verification key is configured:"
        " unsigned bundles are refused"
    )


def test_an_empty_signature_list_is_unsigned(accepted: Path, tmp_path: Path) -> None:
    members = forge.replaced(attacks.tampered_members(accepted), ".signatures.json", forge.signatures_json())
    evil = forge.write_tar(tmp_path / "evil.tar.gz", members)
    assert (
        str(refused(evil))
        == f"bundle {evil}: rejected (unsigned): .signatures.json: expected exactly one JWT, found 0"
    )


def test_a_bundle_signed_with_another_key_is_refused(signed: Build, keys: Keys, accepted: Path) -> None:
    """The attacker builds a complete bundle of their own, newer serial and all, with their key."""
    evil = signed(900, key=keys.attacker)
    err = refused(evil)
    assert (
        str(err) == f"bundle {evil}: rejected (bad-signature): JWT signature does not verify with RS256 key"
    )


def test_a_tampered_bundle_re_signed_with_another_key_is_refused(
    keys: Keys, accepted: Path, tmp_path: Path
) -> None:
    evil = attacks.resigned_with(accepted, tmp_path / "evil.tar.gz", forge.rsa_signer(keys.attacker.key))
    assert refused(evil).kind is RejectionKind.BAD_SIGNATURE


@pytest.mark.parametrize("attack", ["alg-none", "hs256-public-key", "no-alg", "es256-forged"])
def test_algorithm_confusion_is_refused(attack: str, keys: Keys, accepted: Path, tmp_path: Path) -> None:
    out = tmp_path / "evil.tar.gz"
    if attack == "alg-none":
        evil, shown = attacks.alg_none(accepted, out), '"none"'
    elif attack == "hs256-public-key":
        evil, shown = attacks.hs256_with_public_key(accepted, out, keys.signer.public.read_bytes()), '"HS256"'
    elif attack == "no-alg":
        members = forge.resigned(attacks.tampered_members(accepted), {"typ": "JWT"}, lambda _: b"")
        evil, shown = forge.write_tar(out, members), "missing"
    else:
        from cryptography.hazmat.primitives.asymmetric import ec

        attacker_ec = ec.generate_private_key(ec.SECP256R1())
        evil, shown = attacks.resigned_with(accepted, out, forge.ec_signer(attacker_ec), "ES256"), '"ES256"'
    err = refused(evil)
    assert (
        str(err)
        == f"bundle {evil}: rejected (bad-algorithm): JWT alg {shown} refused: only RS256 is configured"
    )


def test_a_legitimately_signed_bundle_with_another_algorithm_is_refused(
    signed: Build, accepted: Path
) -> None:
    """Even the genuine key: the agent verifies with the configured algorithm only."""
    other = signed(150, alg="PS256")
    assert str(refused(other)).endswith('(bad-algorithm): JWT alg "PS256" refused: only RS256 is configured')


def test_ps256_bundles_from_opa_verify_when_ps256_is_configured(
    signed: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPA signs PS* with a salt as long as the hash, which is what PyJWT verifies (RFC 7518 3.5)."""
    monkeypatch.setenv("PYAGENT_BUNDLE_VERIFICATION_ALG", "PS256")
    assert _ruling(signed(150, alg="PS256")) == (False, ["eu-commission/tiktok"])


def test_es256_bundles_verify_with_an_ec_key(
    signed: Build, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYAGENT_BUNDLE_VERIFICATION_KEY", str(keys.signer_ec.public))
    assert _ruling(signed(100, key=keys.signer_ec, alg="ES256")) == (False, ["eu-commission/tiktok"])
    assert str(refused(signed(101))).endswith(
        '(bad-algorithm): JWT alg "RS256" refused: only ES256 is configured'
    )


@pytest.mark.parametrize(
    ("bundle_scope", "agent_scope", "message"),
    [
        ("eu-staging", None, 'signed for "eu-staging", configured for no scope'),
        ("eu-staging", "eu-production", 'signed for "eu-staging", configured for "eu-production"'),
        (None, "eu-production", 'signed for no scope, configured for "eu-production"'),
    ],
)
def test_a_bundle_for_another_scope_is_refused(
    signed: Build,
    monkeypatch: pytest.MonkeyPatch,
    bundle_scope: str | None,
    agent_scope: str | None,
    message: str,
) -> None:
    if agent_scope:
        monkeypatch.setenv("PYAGENT_BUNDLE_SCOPE", agent_scope)
    bundle = signed(120, scope=bundle_scope)
    assert str(refused(bundle)) == f"bundle {bundle}: rejected (wrong-scope): {message}"


def test_the_configured_scope_is_accepted(signed: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYAGENT_BUNDLE_SCOPE", "eu-production")
    assert _ruling(signed(120, scope="eu-production")) == (False, ["eu-commission/tiktok"])


@pytest.mark.parametrize(
    ("kid", "keyid"),
    [("pyagent-2019", None), (None, "pyagent-2019"), ("pyagent-2023", "pyagent-2019")],
    ids=["header-kid", "payload-keyid", "right-kid-wrong-keyid"],
)
def test_a_token_naming_another_key_id_is_verified_with_the_configured_key(
    keys: Keys,
    accepted: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kid: str | None,
    keyid: str | None,
) -> None:
    """Signed with the genuine key for a key id the agent does not use, named in the header (``kid``),
    in the payload (OPA's deprecated ``keyid``), or in the payload while the header names the configured
    one: as OPA, the configured key id wins over the token's (``opa build --signing-key`` names its own),
    and the signature is what is checked. A token signed with another key, whatever it names, is refused
    (``test_a_bundle_signed_with_another_key_naming_the_configured_key_id_is_refused``)."""
    monkeypatch.setenv("PYAGENT_BUNDLE_VERIFICATION_KEY_ID", "pyagent-2023")
    members = forge.read_tar(accepted)
    header = {"alg": "RS256", **({"kid": kid} if kid else {})}
    claims = {"keyid": keyid} if keyid else {}
    signer = forge.rsa_signer(keys.signer.key)
    other = forge.write_tar(tmp_path / "other.tar.gz", forge.resigned(members, header, signer, **claims))
    assert _ruling(other) == (False, ["eu-commission/tiktok"])


def test_a_bundle_signed_with_another_key_naming_the_configured_key_id_is_refused(
    keys: Keys, accepted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key id chooses nothing once one is configured: naming it does not help the attacker's key."""
    monkeypatch.setenv("PYAGENT_BUNDLE_VERIFICATION_KEY_ID", "pyagent-2023")
    members = forge.read_tar(accepted)
    header = {"alg": "RS256", "kid": "pyagent-2023"}
    signer = forge.rsa_signer(keys.attacker.key)
    named = forge.resigned(members, header, signer, keyid="pyagent-2023")
    assert refused(forge.write_tar(tmp_path / "named.tar.gz", named)).kind is RejectionKind.BAD_SIGNATURE


def test_replaying_an_older_signed_bundle_is_refused(signed: Build, state_dir: Path) -> None:
    newer, older = signed(200), signed(100)
    assert _ruling(newer) == (False, ["eu-commission/tiktok"])
    before = _state(state_dir)
    err = refused(older)
    assert str(err) == (
        f"bundle {older}: rejected (rollback): build serial 100 is older than the last accepted 200"
        " (revision 2023.03.15-signed): replay of an old bundle refused"
    )
    assert _state(state_dir) == before
    assert before[1] == newer.read_bytes()
    load(newer)  # the same bundle again (a restart) is fine


def test_a_serial_reused_for_other_content_is_refused(signed: Build) -> None:
    load(signed(200))
    again = signed(200, revision="2023.03.15-signed-again")
    assert str(refused(again)) == (
        f"bundle {again}: rejected (rollback): build serial 200 was already accepted with different content"
    )


def test_with_fallback_the_last_accepted_bundle_keeps_deciding(
    signed: Build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    newer = signed(200)
    load(newer)
    monkeypatch.setenv("PYAGENT_BUNDLE_FALLBACK", "1")
    evil = attacks.tampered(newer, tmp_path / "evil.tar.gz")
    for bundle in (evil, signed(100), tmp_path / "deleted.tar.gz"):
        engine = load(bundle)
        assert engine.verified is not None and engine.verified.serial == 200
        assert _ruling(bundle) == (False, ["eu-commission/tiktok"])
    assert any("running the last accepted bundle (serial 200)" in r.getMessage() for r in caplog.records)


def test_an_unversioned_signed_bundle_is_refused(keys: Keys, accepted: Path, tmp_path: Path) -> None:
    """Signed with the genuine key but without a build serial: nothing to protect against rollback."""
    members = forge.read_tar(accepted)
    manifest = json.loads(forge.member(members, ".manifest"))
    del manifest["metadata"]
    members = forge.replaced(members, ".manifest", json.dumps(manifest).encode())
    odd = forge.write_tar(
        tmp_path / "odd.tar.gz", forge.resigned(members, {"alg": "RS256"}, forge.rsa_signer(keys.signer.key))
    )
    assert refused(odd).kind is RejectionKind.UNVERSIONED


def test_weak_file_hashes_are_refused(keys: Keys, accepted: Path, tmp_path: Path) -> None:
    members = forge.without(forge.read_tar(accepted), ".signatures.json")
    files = [{**entry, "algorithm": "MD5"} for entry in forge.file_list(members)]
    token = forge.forge({"alg": "RS256"}, {"files": files}, forge.rsa_signer(keys.signer.key))
    odd = forge.write_tar(
        tmp_path / "odd.tar.gz", [*members, (forge.SIGNATURES, forge.signatures_json(token))]
    )
    assert str(refused(odd)).endswith("(bad-hash): .manifest: hash algorithm 'MD5' refused (too weak)")


@pytest.mark.parametrize(
    ("signatures", "detail"),
    [
        (b"not json", ".signatures.json: not JSON"),
        (b'{"signatures": ["a.b.c", "d.e.f"]}', ".signatures.json: expected exactly one JWT, found 2"),
        (b'{"signatures": ["a.b.c"], "plugin": "evil"}', ".signatures.json: signing plugin 'evil' refused"),
        (b'{"signatures": ["only.two"]}', "the JWT is not three dot-separated parts"),
        (b'{"signatures": ["e30.e30."]}', "JWT alg missing refused: only RS256 is configured"),
        (b'{"signatures": ["e30.e30.!!"]}', "malformed JWT: Invalid crypto padding"),
    ],
)
def test_malformed_signature_files_are_refused(
    accepted: Path, tmp_path: Path, signatures: bytes, detail: str
) -> None:
    members = forge.replaced(forge.read_tar(accepted), ".signatures.json", signatures)
    evil = forge.write_tar(tmp_path / "evil.tar.gz", members)
    assert refused(evil).detail == detail


def test_a_shadowing_duplicate_member_is_refused(accepted: Path, tmp_path: Path) -> None:
    """The genuine /data.json and an attacker's ./data.json: which one would be loaded? Neither."""
    members = forge.read_tar(accepted)
    evil_data = attacks.without_tiktok_rule(forge.member(members, "data.json"))
    evil = forge.write_tar(tmp_path / "evil.tar.gz", [*members, ("./data.json", evil_data)])
    assert str(refused(evil)) == f"bundle {evil}: rejected (unreadable): member data.json: appears twice"


def test_garbage_is_refused(accepted: Path, tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    evil.write_bytes(b"\x1f\x8b not really gzip")
    assert refused(evil).kind is RejectionKind.UNREADABLE


def test_delta_bundles_are_refused(accepted: Path, tmp_path: Path) -> None:
    """Patches to the data are files like any other: unsigned alone, unlisted next to a signed bundle."""
    assert refused(attacks.delta(tmp_path / "delta.tar.gz")).kind is RejectionKind.UNSIGNED
    plus = attacks.signed_plus_patch(accepted, tmp_path / "plus.tar.gz")
    assert refused(plus).detail == "patch.json: not included in the bundle signature"


@pytest.mark.parametrize("serial", [2**63, 2**70])
def test_a_signed_serial_past_64_bits_is_refused(
    keys: Keys, accepted: Path, tmp_path: Path, serial: int
) -> None:
    """Signed with the genuine key, but no server database could keep its serial: refused as
    unversioned, and the accepted bundle (serial 100) stays."""
    members = forge.read_tar(accepted)
    manifest = json.loads(forge.member(members, ".manifest"))
    manifest["metadata"]["pyagent"]["serial"] = serial
    members = forge.replaced(members, ".manifest", json.dumps(manifest).encode())
    odd = forge.write_tar(
        tmp_path / "odd.tar.gz", forge.resigned(members, {"alg": "RS256"}, forge.rsa_signer(keys.signer.key))
    )
    err = refused(odd)
    assert err.kind is RejectionKind.UNVERSIONED
    assert err.detail == (
        "the signed .manifest has no build serial (metadata.pyagent.serial, an integer from 0 to "
        f"{2**63 - 1}); build it with `pyagent policy bundle --signing-key`"
    )
    assert _ruling(accepted) == (False, ["eu-commission/tiktok"])
