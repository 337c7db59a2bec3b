"""Issue 16, item 4: untrusted strings are shown on the terminal, never obeyed.

A crafted report (organisation, app names), a hostile OPA's error message and a crafted bundle file
name carry OSC/CSI sequences (window title, screen clear, hyperlinks), a C1 CSI, a right-to-left
override and zero-width characters. Whatever path they take to stderr (the ``--org`` note, an error,
a policy error, the text output), they come out as visible escapes: not one raw control character.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pyagent.termsafe import printable, safe_line
from tests.attack.conftest import Run, run_pyagent
from tests.helpers import domain
from tests.helpers.fault_server import Fault, fault_server

AT = "2023-03-16T09:30:00Z"
# OSC 0 (retitle), CSI 2J (clear), OSC 8 (hyperlink), C1 CSI, RLO, zero-width space and joiner, BOM.
HOSTILE = (
    "\x1b]0;pwned\x07\x1b[2J\x1b]8;;http://evil.example/\x1b\\click\x9b31m\u202egnp.exe\u200b\u200d\ufeff"
)
SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J\\x1b]8;;http://evil.example/\\x1b\\click\\x9b31m\\u202egnp.exe\\u200b\\u200d\\ufeff"
RAW = ["\x1b", "\x07", "\x9b", "\u202e", "\u200b", "\u200d", "\ufeff"]
#: What of it an identifier may hold (the schema refuses C0 controls and DEL in ids).
HOSTILE_ID = "click\x9b31m\u202egnp.exe\u200b\u200d\ufeff"
SHOWN_ID = "click\\x9b31m\\u202egnp.exe\\u200b\\u200d\\ufeff"


def assert_no_raw_control(run: Run) -> None:
    for char in RAW:
        assert char not in run.stderr, repr(char)
        assert char not in run.stdout, repr(char)


def test_the_escape_is_visible_and_complete() -> None:
    assert printable(HOSTILE) == SHOWN
    assert safe_line("a\nb\rc\x85d\u2028e\u2066f") == "a\\x0ab\\x0dc\\x85d\\u2028e\\u2066f"


def test_the_reports_organisation_in_the_org_note(write_report: Any) -> None:
    report = domain.make_report(HOSTILE_ID, "android", "corporate", True, [])
    run = run_pyagent(
        "check", write_report(report), "--at", AT, "--engine", "embedded", "--org", "eu-commission"
    )
    assert run.code == 0, run.stderr
    assert run.stderr.splitlines()[0] == (
        f"pyagent: note: --org eu-commission overrides the report's organization {SHOWN_ID}"
    )
    assert_no_raw_control(run)


def test_the_reports_organisation_in_a_policy_error(write_report: Any, policy_bundle: Path) -> None:
    report = domain.make_report(HOSTILE_ID, "android", "corporate", True, [])
    path = write_report(report)
    run = run_pyagent("check", path, "--at", AT, "--engine", "embedded")
    assert (run.code, run.stderr) == (
        2, f'pyagent: error: {path}: unknown organisation "{SHOWN_ID}"; known: eeas, eu-commission, '
        "eu-council, eu-parliament, india, us-federal; give one of the organisations the policy data "
        "defines\n",
    )  # fmt: skip
    assert_no_raw_control(run)


def test_the_reports_organisation_with_control_characters_is_refused_escaped(write_report: Any) -> None:
    report = domain.make_report(HOSTILE, "android", "corporate", True, [])
    path = write_report(report)
    run = run_pyagent("check", path, "--at", AT, "--engine", "embedded")
    assert run.code == 2
    assert run.stderr.startswith(
        f"pyagent: error: {path}: $.device.organization: must not contain a control character (\\u001b), "
        "found at position 0: "
    )
    assert_no_raw_control(run)


def test_app_names_in_the_text_output(write_report: Any, policy_bundle: Path) -> None:
    report = domain.make_report("eu-commission", "android", "corporate", True, ["com.zhiliaoapp.musically"])
    report["apps"][0]["name"] = HOSTILE
    run = run_pyagent("check", write_report(report), "--at", AT, "--engine", "embedded")
    assert run.code == 1
    assert SHOWN in run.stderr
    assert_no_raw_control(run)


def test_an_opa_error_message_is_shown_escaped(write_report: Any) -> None:
    body = json.dumps({"code": "invalid_parameter", "message": HOSTILE}, ensure_ascii=False).encode()
    with fault_server(Fault(status=400, body=body)) as url:
        run = run_pyagent(
            "check", write_report(domain.make_report("india", "android", "corporate", True, [])),
            "--at", AT, "--opa-url", url,
        )  # fmt: skip
    assert (run.code, run.stderr.strip()) == (3, f"pyagent: error: OPA at {url}: HTTP 400 ({SHOWN})")
    assert_no_raw_control(run)


@pytest.mark.parametrize(
    ("where", "code", "said"),
    [
        ("--bundle", 3, "bundle {name}: not a readable tar.gz: not a gzip file"),
        ("--data", 2, "{name}:1:1: data file is not valid JSON: Expecting value"),
    ],
)
def test_a_crafted_file_name_is_shown_escaped(
    write_report: Any, tmp_path: Path, where: str, code: int, said: str
) -> None:
    name = tmp_path / f"{HOSTILE.replace('/', '_')}.json"
    name.write_bytes(b"\x00not a bundle")
    report = write_report(domain.make_report("india", "android", "corporate", True, []))
    run = run_pyagent("check", report, "--at", AT, "--engine", "embedded", where, str(name))
    assert run.code == code, run.stderr  # a policy that cannot load decides nothing; bad data is bad input
    shown = str(tmp_path / f"{SHOWN.replace('/', '_')}.json")
    assert run.stderr == f"pyagent: error: {said.format(name=shown)}\n"
    assert_no_raw_control(run)


def test_report_file_names_are_shown_not_obeyed(tmp_path: Path) -> None:
    """A file named with escapes (validate's verdict, fleet's note on a file it passes over) or with a
    newline (fleet's problem line: it had printed a line of its own, "all devices compliant")."""
    clean = (
        Path(__file__).parents[2] / "examples" / "reports" / "eu-commission-corporate-clean.json"
    ).read_text()
    hostile = HOSTILE.replace("/", "_")  # a file name holds no slash
    named = tmp_path / f"r{hostile}.json"
    named.write_text(clean)
    validated = run_pyagent("validate", str(named))
    assert validated.code == 0 and validated.stderr == f"{printable(str(named))}: valid\n"
    assert_no_raw_control(validated)

    inventory = tmp_path / "inv"
    inventory.mkdir()
    (inventory / "a.json").write_text(clean)
    (inventory / f"n{hostile}.txt").write_text("")
    forged = inventory / "z\n  all devices compliant; nothing to do\n  .json"
    forged.write_text("{\n")
    run = run_pyagent("fleet", str(inventory), "--at", AT)
    assert run.code == 1
    assert_no_raw_control(run)
    assert "  all devices compliant; nothing to do" not in run.stderr.splitlines()
    assert f"invalid: {printable(str(forged))}:" in run.stderr
    assert f"e.g. {printable(str(inventory / ('n' + hostile + '.txt')))}\n" in run.stderr


def test_a_line_break_in_an_agent_event_never_starts_a_line_of_its_own() -> None:
    """An unsigned bundle's revision (which a server chooses) forged a "seq 2 recorded: compliant" line
    in the agent's stderr and journal; every event is one line."""
    from pyagent.agent.runner import ActivityLog

    lines: list[str] = []
    revision = "good-3 active\npyagent: agent: seq 2 recorded: compliant for eu-commission"
    ActivityLog(None, lines.append).event("bundle_activated", f"bundle pyagent: revision {revision} active")
    assert lines == [
        "pyagent: agent: bundle pyagent: revision good-3 active\\x0apyagent: agent: seq 2 recorded: "
        "compliant for eu-commission active"
    ]
