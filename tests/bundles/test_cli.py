"""``pyagent policy bundle --signing-key`` and ``pyagent check`` on signed bundles, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.bundles import attacks, forge, tally
from tests.bundles.conftest import AT, REPORT, Build, Keys
from tests.helpers.cli import invoke as _run
from tests.helpers.opa_server import REPO
from tests.helpers.policy_data import shipped_revision


def _signed_manifest_and_claims(bundle: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    members = forge.read_tar(bundle)
    header, payload = forge.decode(forge.token_of(members))
    return json.loads(forge.member(members, ".manifest")), {"alg": header["alg"], **payload}


def test_policy_bundle_signs_every_file_with_a_serial(keys: Keys, tmp_path: Path) -> None:
    out = tmp_path / "signed.tar.gz"
    result = _run(
        ["policy", "bundle", "--signing-key", str(keys.signer.private), "--revision", "2023.03.15-signed",
         "--serial", "42", "-o", str(out)]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr == f"wrote {out} (signed RS256, serial 42, revision 2023.03.15-signed)\n"
    manifest, claims = _signed_manifest_and_claims(out)
    assert manifest["revision"] == "2023.03.15-signed"
    assert manifest["metadata"]["pyagent"]["serial"] == 42
    assert manifest["metadata"]["pyagent"]["built_at"] == claims["iat"]
    assert claims["alg"] == "RS256" and "scope" not in claims
    rego = {
        str(path.relative_to(REPO / "policies" / "rego"))
        for path in (REPO / "policies" / "rego").rglob("*.rego")
        if not path.name.endswith("_test.rego")
    }
    assert {f["name"] for f in claims["files"]} == {".manifest", "data.json", "policy.wasm", *rego}


def test_policy_bundle_with_an_ec_key_a_scope_and_the_rego_target(keys: Keys, tmp_path: Path) -> None:
    out = tmp_path / "server.tar.gz"
    args = ["policy", "bundle", "--signing-key", str(keys.signer_ec.private), "--scope", "eu-fleet"]
    result = _run([*args, "--target", "rego", "--serial", "7", "-o", str(out)])
    assert result.exit_code == 0, result.output
    revision = shipped_revision()  # no --revision: the data's, as the help says
    assert result.stderr == f"wrote {out} (signed ES256, serial 7, revision {revision}, scope eu-fleet)\n"
    _, claims = _signed_manifest_and_claims(out)
    assert (claims["alg"], claims["scope"]) == ("ES256", "eu-fleet")
    assert "policy.wasm" not in {f["name"] for f in claims["files"]}


def test_unsigned_bundles_are_built_as_before(tmp_path: Path) -> None:
    out = tmp_path / "plain.tar.gz"
    result = _run(["policy", "bundle", "-o", str(out)])
    assert (result.exit_code, result.stderr) == (0, f"wrote {out}\n")
    assert ".signatures.json" not in {name.lstrip("/") for name, _ in forge.read_tar(out)}


def test_an_unsigned_bundle_names_files_from_the_policy_roots_not_this_machine(tmp_path: Path) -> None:
    policies = Path(__file__).resolve().parents[2] / "policies"
    out = tmp_path / "plain.tar.gz"
    result = _run(["policy", "bundle", "--target", "rego", "-o", str(out), str(policies)])
    assert (result.exit_code, result.stderr) == (0, f"wrote {out}\n")
    rego = sorted(
        f"/{path.relative_to(policies / 'rego')}"
        for path in (policies / "rego").rglob("*.rego")
        if not path.name.endswith("_test.rego")
    )
    names = [name for name, _ in forge.read_tar(out)]
    assert sorted(names) == sorted(["/.manifest", "/data.json", *rego])
    assert json.loads(forge.member(forge.read_tar(out), ".manifest"))["revision"] == shipped_revision()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--serial", "3"],
            "pyagent: error: --serial needs --signing-key (see pyagent policy bundle --help)",
        ),
        (
            ["--signing-key", "{signer}", "--signing-alg", "HS256"],
            "pyagent: error: Invalid value for '--signing-alg': 'HS256' is not one of 'RS256', 'RS384', "
            "'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'. "
            "(see pyagent policy bundle --help)",
        ),
        (
            ["--signing-key", "{signer_pub}"],
            "pyagent: error: signing key {signer_pub}: not an unencrypted PEM private key",
        ),
        (
            ["--signing-key", "{signer_ec}", "--signing-alg", "RS256"],
            "pyagent: error: signing key {signer_ec}: RS256 needs an RSA key",
        ),
    ],
    ids=["serial-without-key", "hmac", "public-key", "alg-mismatch"],
)
def test_policy_bundle_usage_errors(keys: Keys, tmp_path: Path, args: list[str], message: str) -> None:
    paths = {
        "signer": keys.signer.private,
        "signer_pub": keys.signer.public,
        "signer_ec": keys.signer_ec.private,
    }
    args = [a.format(**paths) for a in args]
    result = _run(["policy", "bundle", *args, "-o", str(tmp_path / "x.tar.gz")])
    expected = message.format(**paths)
    assert result.exit_code == 2
    if "not an unencrypted PEM private key" in expected:  # what follows is cryptography's own words
        assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1
    else:
        assert result.stderr == expected + "\n"
    assert not (tmp_path / "x.tar.gz").exists()


def test_policy_bundle_reports_a_failed_build(keys: Keys, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "p.rego").write_text("package broken\n\nallow if {\n")
    result = _run(
        [
            "policy",
            "bundle",
            str(broken),
            "--signing-key",
            str(keys.signer.private),
            "-o",
            str(tmp_path / "x"),
        ]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("pyagent: error: opa build failed: ")


def _env(keys: Keys, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PYAGENT_BUNDLE_VERIFICATION_KEY": str(keys.signer.public),
        "PYAGENT_STATE_DIR": str(tmp_path / "state"),
        **extra,
    }


def _check(bundle: Path, env: dict[str, str]) -> Result:
    return _run(["check", str(REPORT), "--engine", "embedded", "--bundle", str(bundle), "--at", AT], env=env)


def test_check_on_a_signed_bundle_decides(signed: Build, keys: Keys, tmp_path: Path) -> None:
    result = _check(signed(100), _env(keys, tmp_path))
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[:3] == [
        "NON-COMPLIANT: device fr-brussels-0042, organisation eu-commission, evaluated 2023-03-16T09:30:00Z",
        "violations (1):",
        "  eu-commission/tiktok: TikTok (com.zhiliaoapp.musically), scope personal-enrolled",
    ]


def test_check_on_a_tampered_bundle_gives_no_decision_and_one_line(
    signed: Build, keys: Keys, tmp_path: Path
) -> None:
    evil = attacks.tampered(signed(100), tmp_path / "evil.tar.gz")
    result = _check(evil, _env(keys, tmp_path))
    assert result.exit_code == 3
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("pyagent: error: ")]
    assert len(errors) == 1
    assert errors[0].startswith(
        f"pyagent: error: bundle {evil}: rejected (tampered): data.json: digest mismatch (signed "
    )
    tally.record("cli", "tampered")


def test_check_on_a_replayed_bundle_gives_no_decision(signed: Build, keys: Keys, tmp_path: Path) -> None:
    env = _env(keys, tmp_path)
    assert _check(signed(200), env).exit_code == 1
    result = _check(signed(100), env)
    assert result.exit_code == 3
    assert (
        f"pyagent: error: bundle {signed(100)}: rejected (rollback): build serial 100 is older than the last"
        " accepted 200 (revision 2023.03.15-signed): replay of an old bundle refused"
    ) in result.stderr.splitlines()
    tally.record("cli", "rollback")
    fallback = _check(signed(100), {**env, "PYAGENT_BUNDLE_FALLBACK": "1"})
    assert fallback.exit_code == 1, fallback.output


def test_check_with_a_scope_but_no_key_is_a_usage_error(signed: Build, tmp_path: Path) -> None:
    result = _check(signed(100), {"PYAGENT_BUNDLE_SCOPE": "eu-fleet", "PYAGENT_STATE_DIR": str(tmp_path)})
    assert (result.exit_code, result.stdout, result.stderr) == (
        2, "", "pyagent: error: bundle verification scope given without a verification key\n"
    )  # fmt: skip


def test_decisions_name_the_revision_the_bundle_was_built_as(tmp_path: Path) -> None:
    """``--revision`` names the build: its decisions report it as ``policy_revision`` (data.yaml's
    revision is the default), so the server's view of which devices run which revision holds."""
    out = tmp_path / "rev-50.tar.gz"
    assert _run(["policy", "bundle", "--revision", "rev-50", "-o", str(out)]).exit_code == 0
    assert shipped_revision() != "rev-50"
    result = _run(["check", str(REPORT), "--bundle", str(out), "--at", AT, "--format", "json"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["policy_revision"] == "rev-50"
    assert json.loads(forge.member(forge.read_tar(out), ".manifest"))["revision"] == "rev-50"


@pytest.mark.parametrize(
    ("args", "label"),
    [
        (["policy", "bundle", "--signing-key", "/dev/zero", "-o", "{out}"], "signing key"),
        (["check", "{report}", "--bundle", "{bundle}", "--verification-key", "/dev/zero"],
         "verification key"),
    ],
    ids=["signing-key", "verification-key"],
)  # fmt: skip
def test_an_endless_key_file_is_refused_without_reading_it_all(
    tmp_path: Path, policy_bundle: Path, args: list[str], label: str
) -> None:
    """/dev/zero given as a key took 10 GB before a MemoryError (exit 3): it is read up to a bound."""
    values = {"out": str(tmp_path / "x.tar.gz"), "report": str(REPORT), "bundle": str(policy_bundle)}
    result = _run([a.format(**values) for a in args])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: /dev/zero: {label} is larger than 1 MiB\n",
    )


def test_a_serial_past_64_bits_is_a_usage_error(keys: Keys, tmp_path: Path) -> None:
    args = ["policy", "bundle", "--signing-key", str(keys.signer.private), "-o", str(tmp_path / "b.tar.gz")]
    result = _run([*args, "--serial", str(2**63)])
    assert result.exit_code == 2
    assert f"Invalid value for '--serial': {2**63} is not in the range 0<=x<={2**63 - 1}." in result.stderr
    assert not (tmp_path / "b.tar.gz").exists()
