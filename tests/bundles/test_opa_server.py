"""The same signed bundles on a real ``opa run --server --verification-key ... --bundle``: the good one
serves decisions, the attacker's versions are refused when OPA starts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyagent.bundles.digest import file_digest
from pyagent.cli import cli
from pyagent.errors import InvalidInputError
from tests.bundles import attacks, forge, tally
from tests.bundles.conftest import AT, REPORT, Build, Keys
from tests.helpers.opa_server import run_opa_server
from tests.helpers.policy_data import shipped_revision


@pytest.fixture(scope="module")
def genuine(signed: Build) -> Path:
    """The policy as a signed rego bundle (the server build of opa runs no wasm)."""
    return signed(300, target="rego")


def _refused_at_start(opa_bin: str, workdir: Path, bundle: Path, public: Path, *extra: str) -> str:
    """Start OPA on ``bundle``; it must exit with an error instead of serving. Returns its log."""
    with (
        pytest.raises(RuntimeError, match=r"^opa exited with 1: ") as caught,
        run_opa_server(
            opa_bin,
            workdir,
            paths=[bundle],
            bundle=True,
            extra_args=["--verification-key", str(public), *extra],
        ),
    ):
        pass
    return str(caught.value)


def test_a_good_signed_bundle_serves_decisions(
    opa_bin: str, genuine: Path, keys: Keys, tmp_path: Path
) -> None:
    extra = ["--verification-key", str(keys.signer.public)]
    with run_opa_server(opa_bin, tmp_path, paths=[genuine], bundle=True, extra_args=extra) as server:
        result = CliRunner().invoke(
            cli,
            [
                "check",
                str(REPORT),
                "--engine",
                "opa",
                "--opa-url",
                server.url,
                "--at",
                AT,
                "--format",
                "json",
            ],
        )
    assert result.exit_code == 1, result.output
    decision = json.loads(result.stdout)
    assert [v["rule"] for v in decision["violations"]] == ["eu-commission/tiktok"]
    # the bundle's revision (built with --revision), not data.yaml's: decisions name the build that made them
    assert shipped_revision() != "2023.03.15-signed"
    assert decision["policy_revision"] == "2023.03.15-signed"


@pytest.mark.parametrize(
    ("attack", "kind", "opa_says"),
    [
        ("tampered", "tampered", "data.json: digest mismatch"),
        (
            "extra-file",
            "extra-file",
            "file pyagent/exemptions/evil/data.json not included in bundle signature",
        ),
        ("stripped", "unsigned", "bundle missing .signatures.json file"),
        ("other-key", "bad-signature", "failed to verify JWT signature: crypto/rsa: verification error"),
        ("alg-none", "bad-algorithm", "failed to verify JWT signature: crypto/rsa: verification error"),
        (
            "hs256-public-key",
            "bad-algorithm",
            "failed to verify JWT signature: crypto/rsa: verification error",
        ),
        ("delta", "unsigned", "delta bundles do not support signature verification"),
    ],
)
def test_opa_refuses_the_attackers_bundle_at_start(
    opa_bin: str,
    genuine: Path,
    keys: Keys,
    signed: Build,
    tmp_path: Path,
    attack: str,
    kind: str,
    opa_says: str,
) -> None:
    out = tmp_path / "evil.tar.gz"
    if attack == "tampered":
        evil = attacks.tampered(genuine, out)
    elif attack == "extra-file":
        evil = attacks.extra_exemption(genuine, out)
    elif attack == "stripped":
        evil = attacks.stripped(genuine, out)
    elif attack == "other-key":
        evil = signed(900, target="rego", key=keys.attacker)
    elif attack == "alg-none":
        evil = attacks.alg_none(genuine, out)
    elif attack == "delta":
        evil = attacks.delta(out)
    else:
        evil = attacks.hs256_with_public_key(genuine, out, keys.signer.public.read_bytes())
    log = _refused_at_start(opa_bin, tmp_path, evil, keys.signer.public)
    assert f"error: load error: bundle {evil}: {opa_says}" in log
    if (
        attack == "tampered"
    ):  # OPA's digest of the attacker's data.json is the one the embedded verifier computes
        ours = file_digest("data.json", forge.member(forge.read_tar(evil), "data.json"), "SHA-256")
        assert f", got: {ours})" in log
    tally.record("opa-server", kind)


def test_opa_refuses_a_bundle_signed_for_another_scope(
    opa_bin: str, signed: Build, keys: Keys, tmp_path: Path
) -> None:
    staging = signed(310, target="rego", scope="eu-staging")
    log = _refused_at_start(opa_bin, tmp_path, staging, keys.signer.public, "--scope", "eu-production")
    assert log.rstrip().endswith(f"error: load error: bundle {staging}: scope mismatch")
    tally.record("opa-server", "wrong-scope")
    extra = ["--verification-key", str(keys.signer.public), "--scope", "eu-staging"]
    with run_opa_server(opa_bin, tmp_path, paths=[staging], bundle=True, extra_args=extra):
        pass


def test_opa_and_the_embedded_verifier_agree_on_reformatted_json(
    opa_bin: str, genuine: Path, keys: Keys, tmp_path: Path
) -> None:
    """Both hash data.json canonically: re-indented, re-ordered data verifies on both."""
    members = forge.read_tar(genuine)
    data = json.loads(forge.member(members, "data.json"))
    pretty = json.dumps(dict(reversed(list(data.items()))), indent=3).encode()
    same = forge.write_tar(tmp_path / "pretty.tar.gz", forge.replaced(members, "data.json", pretty))
    done = subprocess.run(
        [
            opa_bin,
            "build",
            "-b",
            "--verification-key",
            str(keys.signer.public),
            "-o",
            str(tmp_path / "o.tar.gz"),
            str(same),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_hmac_with_the_public_key_works_on_a_misconfigured_opa_and_cannot_be_configured_here(
    opa_bin: str, genuine: Path, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPA takes the algorithm from its configuration, never from the token, so the HS256 forgery fails
    above. Configured with ``--signing-alg HS256`` and the public key file, though, OPA uses that file
    as the HMAC secret and accepts the forgery. The embedded engine refuses HMAC configurations."""
    evil = attacks.hs256_with_public_key(genuine, tmp_path / "evil.tar.gz", keys.signer.public.read_bytes())
    done = subprocess.run(
        [opa_bin, "build", "-b", "--verification-key", str(keys.signer.public), "--signing-alg", "HS256",
         "-o", str(tmp_path / "o.tar.gz"), str(evil)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    from pyagent.bundles.load import BundleTrust

    monkeypatch.setenv("PYAGENT_BUNDLE_VERIFICATION_KEY", str(keys.signer.public))
    monkeypatch.setenv("PYAGENT_BUNDLE_VERIFICATION_ALG", "HS256")
    with pytest.raises(InvalidInputError, match=r"algorithm 'HS256' refused: use one of RS256, "):
        BundleTrust.from_env()
