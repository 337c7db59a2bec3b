"""What a fresh clone found while following the README (issue 17, item 8), each pinned exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyagent.bounded_http import Reply
from pyagent.cli import cli
from pyagent.cli.render import summary_line
from pyagent.engines.opa_server import _server_message
from pyagent.termsafe import shorten

# 40 words of 6 characters (7 with the space): 279 characters, cut at 200
LONG_MESSAGE = " ".join(f"word{i:02d}" for i in range(40))


def test_long_messages_are_cut_at_a_word_and_marked() -> None:
    assert shorten("short  and\tsimple") == "short and simple"
    assert shorten(LONG_MESSAGE) == " ".join(f"word{i:02d}" for i in range(28)) + "…"
    assert len(shorten(LONG_MESSAGE)) == 196  # 28 words and their spaces, and the mark
    assert shorten("x" * 250) == "x" * 199 + "…"  # one long word: cut where it must be


def test_an_opa_error_message_ends_on_a_whole_word() -> None:
    body = json.dumps({"code": "internal_error", "message": LONG_MESSAGE}).encode()
    opa_reply = Reply(status=500, headers={}, body=body, size=len(body))
    assert _server_message(opa_reply) == "(" + " ".join(f"word{i:02d}" for i in range(28)) + "…)"
    longer = json.dumps({"message": " ".join(f"word{i:02d}" for i in range(60))}).encode()
    reply = Reply(status=500, headers={}, body=longer, size=len(longer))  # the agent's HTTP client: 300
    assert reply.message() == "HTTP 500: " + " ".join(f"word{i:02d}" for i in range(42)) + "…"


def test_the_summary_line_counts_in_the_singular_and_the_plural() -> None:
    decision = {
        "allow": False,
        "device_id": "fr-brussels-0042",
        "organization": "eu-commission",
        "violations": [{"rule": "eu-commission/tiktok"}],
        "warnings": [{"rule": "a"}, {"rule": "b"}],
        "exempted": [{"rule": "c"}],
    }
    assert summary_line(decision) == (
        "pyagent: NON-COMPLIANT: fr-brussels-0042 (eu-commission): 1 violation, 2 warnings, 1 exempted"
    )
    decision.update(violations=[{"rule": "x"}, {"rule": "y"}], warnings=[{"rule": "a"}])
    assert summary_line(decision).endswith(": 2 violations, 1 warning, 1 exempted")


def test_validate_help_names_no_checkout_path() -> None:
    shown = CliRunner().invoke(cli, ["validate", "--help"])
    assert shown.exit_code == 0
    assert shown.output.splitlines()[2] == "  Check device reports against pyagent's device report schema."
    assert "schemas/" not in shown.output
    listed = CliRunner().invoke(cli, ["--help"], terminal_width=100)
    assert "  validate  Check device reports against pyagent's device report schema.\n" in listed.output


def test_the_server_keeps_its_database_in_the_agents_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`PYAGENT_STATE_DIR` moves the server's SQLite database as it moves the agent's spool."""
    monkeypatch.delenv("PYAGENT_SERVER_DB", raising=False)
    monkeypatch.setenv("PYAGENT_STATE_DIR", str(tmp_path / "state"))
    added = CliRunner().invoke(cli, ["server", "token", "add", "security", "--role", "reader"])
    assert added.exit_code == 0, added.output
    listed = CliRunner().invoke(cli, ["server", "token", "list", "--state-dir", str(tmp_path / "state")])
    assert (listed.exit_code, listed.output.split()[:2]) == (0, ["security", "reader"])
    assert (tmp_path / "state" / "server.db").is_file()
