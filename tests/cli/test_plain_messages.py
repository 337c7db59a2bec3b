"""Errors in the user's words, not a library's: no Python exception name, no link to a library's FAQ,
no codec's wording (each found by an audit of every command's bad inputs)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cli import invoke as run

REPO = Path(__file__).resolve().parents[2]
CLEAN = REPO / "examples" / "reports" / "eu-commission-corporate-clean.json"


def test_an_opa_socket_that_is_not_there_is_said_so(tmp_path: Path) -> None:
    socket = tmp_path / "opa.sock"
    result = run(["check", str(CLEAN), "--opa-url", f"unix://{socket}", "--opa-retries", "0"])
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr == (
        f"pyagent: error: OPA at unix://{socket}: cannot connect (no socket at that path) "
        "(gave up after 1 attempt, deadline 10 s)\n"
    )


def test_a_signing_key_that_is_no_pem_names_no_library_faq(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    result = run(
        ["policy", "bundle", str(REPO / "policies"), "--signing-key", str(key), "-o", str(tmp_path / "b")]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"pyagent: error: signing key {key}: not an unencrypted PEM private key ("
    )
    assert "https://" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_server_config_that_is_not_utf8_says_where(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_bytes(b"[server]\nbind = '\xd2'\n")
    result = run(["server", "migrate", "--config", str(config), "--db", str(tmp_path / "s.db")])
    assert (result.exit_code, result.stderr) == (
        2, f"pyagent: error: {config}: the server config is not UTF-8 text (byte 0xd2 at offset 17)\n"
    )  # fmt: skip
