"""`pyagent check` through the real CLI, on both engines, against CONTRACT sections 2-3."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from pyagent.cli import cli
from pyagent.report.validate import decision_validator
from tests.cli.conftest import AT, EXAMPLES, run
from tests.helpers.opa_server import RunningOpa
from tests.helpers.policy_data import shipped_revision

# Every shipped example, and the decision domain.md implies for it on 16 March 2023.
EXAMPLE_DECISIONS: dict[str, tuple[int, list[list[str]]]] = {
    "eu-commission-personal-enrolled-tiktok.json": (
        1,
        [["eu-commission/tiktok", "com.zhiliaoapp.musically", "personal-enrolled"]],
    ),
    "eu-commission-corporate-clean.json": (0, []),
    "eu-council-personal-outlook-tiktok.json": (
        1,
        [["eu-council/tiktok", "com.zhiliaoapp.musically", "personal-with-work-apps"]],
    ),
    "eeas-personal-teams-douyin.json": (
        1,
        [["eeas/tiktok-work-apps", "com.ss.iphone.ugc.Aweme", "personal-with-work-apps"]],
    ),
    "eu-parliament-corporate-tiktok.json": (0, []),
    "us-federal-corporate-windows-tiktok.json": (
        1,
        [["us-federal/tiktok", "BytedancePte.Ltd.TikTok_6yccndn6064se", "corporate"]],
    ),
    "us-federal-personal-tiktok.json": (0, []),
    "india-personal-lite.json": (1, [["india/tiktok", "com.zhiliaoapp.musically.go", "all"]]),
}


def test_every_example_is_listed() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.json")) == sorted(EXAMPLE_DECISIONS)


@pytest.mark.parametrize("name", sorted(EXAMPLE_DECISIONS))
def test_example_decisions_match_the_domain(name: str, engine_args: list[str]) -> None:
    code, violations = EXAMPLE_DECISIONS[name]
    result = run(["check", str(EXAMPLES / name), "--at", AT, "--format", "json", *engine_args])
    assert result.exit_code == code, result.stderr
    decision = json.loads(result.stdout)
    assert [[v["rule"], v["app_id"], v["scope"]] for v in decision["violations"]] == violations
    assert decision["allow"] is (code == 0)
    assert decision["engine"] == engine_args[1]
    assert decision["evaluated_at"] == AT
    assert decision_validator().validate(decision).valid


def test_contract_example_decision_document(engine_args: list[str]) -> None:
    result = run(
        [
            "check",
            str(EXAMPLES / "eu-commission-personal-enrolled-tiktok.json"),
            "--at",
            "2023-03-16T09:31:02Z",
            "--format",
            "json",
            *engine_args,
        ]
    )
    assert result.exit_code == 1
    decision = json.loads(result.stdout)
    assert list(decision)[:11] == [
        "device_id",
        "organization",
        "allow",
        "violations",
        "warnings",
        "exempted",
        "errors",
        "evaluated_at",
        "policy_revision",
        "engine",
        "decision_id",
    ]
    assert decision["device_id"] == "fr-brussels-0042"
    assert decision["organization"] == "eu-commission"
    assert decision["warnings"] == [] and decision["exempted"] == [] and decision["errors"] == []
    (violation,) = decision["violations"]
    assert {k: violation[k] for k in ("rule", "ban", "app_id", "effective_from", "scope")} == {
        "rule": "eu-commission/tiktok",
        "ban": "tiktok",
        "app_id": "com.zhiliaoapp.musically",
        "effective_from": "2023-03-15T00:00:00Z",
        "scope": "personal-enrolled",
    }
    assert violation["message"] == (
        "TikTok (com.zhiliaoapp.musically) is banned on personal-enrolled devices of European Commission "
        "from 2023-03-15T00:00:00Z: cybersecurity: protection against threats that could be exploited "
        "against the organisation's corporate environment"
    )
    assert violation["remediation"] == (
        "Uninstall the app from this device. Corporate devices and personal devices enrolled in the "
        "Commission's mobile device service must not run it (Commission decision of 23 February 2023)."
    )
    assert decision["policy_revision"] == shipped_revision()
    assert len(decision["decision_id"]) == 36


def test_before_effective_date_is_a_warning_and_exit_0(engine_args: list[str]) -> None:
    result = run(
        [
            "check",
            str(EXAMPLES / "eu-commission-personal-enrolled-tiktok.json"),
            "--at",
            "2023-03-14T23:59:59Z",
            "--format",
            "json",
            *engine_args,
        ]
    )
    assert result.exit_code == 0
    decision = json.loads(result.stdout)
    assert decision["violations"] == []
    assert [(w["rule"], w["reason"], w["effective_from"]) for w in decision["warnings"]] == [
        ("eu-commission/tiktok", "not_yet_effective", "2023-03-15T00:00:00Z")
    ]


def test_report_from_stdin(engine_args: list[str]) -> None:
    text = (EXAMPLES / "india-personal-lite.json").read_text()
    result = run(["check", "-", "--at", AT, "--format", "json", *engine_args], stdin=text)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["violations"][0]["rule"] == "india/tiktok"


def test_org_flag_fills_a_missing_organization(engine_args: list[str], tmp_path: Path) -> None:
    report = json.loads((EXAMPLES / "eu-council-personal-outlook-tiktok.json").read_text())
    del report["device"]["organization"]
    path = tmp_path / "no-org.json"
    path.write_text(json.dumps(report))
    result = run(["check", str(path), "--org", "eu-council", "--at", AT, "--format", "json", *engine_args])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["organization"] == "eu-council"


def test_org_flag_overrides_the_report_and_says_so(engine_args: list[str]) -> None:
    result = run(
        [
            "check",
            str(EXAMPLES / "eu-commission-personal-enrolled-tiktok.json"),
            "--org",
            "eu-parliament",
            "--at",
            AT,
            "--format",
            "json",
            *engine_args,
        ]
    )
    assert result.exit_code == 0
    assert "--org eu-parliament overrides the report's organization eu-commission" in result.stderr


def test_text_format_goes_to_stderr_only(policy_bundle: Path) -> None:
    result = run(["check", str(EXAMPLES / "india-personal-lite.json"), "--at", AT, "--engine", "embedded"])
    assert result.exit_code == 1
    assert result.stdout == ""
    *lines, footer, end = result.stderr.split("\n")
    assert lines == [
        "NON-COMPLIANT: device in-bengaluru-personal-2210, organisation india, "
        "evaluated 2023-03-16T09:30:00Z",
        "violations (1):",
        "  india/tiktok: TikTok Lite (com.zhiliaoapp.musically.go), scope all",
        "    TikTok Lite (com.zhiliaoapp.musically.go) is banned on all devices of Government of India from "
        "2020-06-29T00:00:00Z: national security: TikTok is blocked in India since 2020",
        "    remediation: The app is banned in India on every device; uninstall it.",
    ]
    revision = re.escape(shipped_revision())
    assert re.fullmatch(rf"policy revision {revision}, engine embedded, decision [0-9a-f-]{{36}}", footer)
    assert end == ""


@pytest.mark.parametrize("fmt", ["junit", "sarif"])
def test_machine_formats_on_stdout(fmt: str, policy_bundle: Path) -> None:
    result = run(["check", str(EXAMPLES / "india-personal-lite.json"), "--at", AT, "--format", fmt])
    assert (result.exit_code, result.stderr) == (
        1,
        "pyagent: NON-COMPLIANT: in-bengaluru-personal-2210 (india): 1 violation\n",
    )
    if fmt == "sarif":
        assert json.loads(result.stdout)["version"] == "2.1.0"
    else:
        assert result.stdout.lstrip().startswith("<?xml")


def test_output_file(policy_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "decision.json"
    result = run(
        [
            "check",
            str(EXAMPLES / "eu-commission-corporate-clean.json"),
            "--at",
            AT,
            "--format",
            "json",
            "-o",
            str(out),
        ]
    )
    assert result.exit_code == 0
    assert result.stdout == ""
    assert json.loads(out.read_text())["allow"] is True


def test_auto_engine_uses_opa_when_url_is_set(
    opa_server: RunningOpa, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYAGENT_OPA_URL", opa_server.url)
    result = run(["check", str(EXAMPLES / "india-personal-lite.json"), "--at", AT, "--format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["engine"] == "opa"


def test_auto_engine_is_embedded_without_url(policy_bundle: Path) -> None:
    result = run(["check", str(EXAMPLES / "india-personal-lite.json"), "--at", AT, "--format", "json"])
    assert json.loads(result.stdout)["engine"] == "embedded"


def test_real_subprocess_exit_codes_and_streams(policy_bundle: Path) -> None:
    def pyagent(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pyagent", *args], capture_output=True, text=True, timeout=60, check=False
        )

    denied = pyagent(
        "check", str(EXAMPLES / "eu-council-personal-outlook-tiktok.json"), "--at", AT, "--format", "json"
    )
    assert denied.returncode == 1
    assert json.loads(denied.stdout)["violations"][0]["rule"] == "eu-council/tiktok"
    allowed = pyagent("check", str(EXAMPLES / "us-federal-personal-tiktok.json"), "--at", AT)
    assert allowed.returncode == 0
    assert allowed.stdout == ""
    assert allowed.stderr.startswith(
        "COMPLIANT: device us-personal-phone-0981, organisation us-federal, evaluated 2023-03-16T09:30:00Z\n"
        "no ban applies to this device's apps\n"  # its TikTok is out of the ban's scope (government-owned)
    )
    invalid = pyagent("check", str(EXAMPLES), "--at", AT)
    assert (invalid.returncode, invalid.stdout) == (2, "")
    assert invalid.stderr == f"pyagent: error: {EXAMPLES}: report is a directory, not a regular file\n"


def test_every_registered_command_resolves_to_its_name() -> None:
    from pyagent.cli import COMMANDS

    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command)
        assert command.name == name
        assert COMMANDS[name].summary == command.get_short_help_str(limit=200)
    assert cli.list_commands(ctx) == sorted(COMMANDS)


@pytest.mark.parametrize("fmt", ["json", "junit", "sarif", "github", "table"])
def test_the_summary_beside_machine_output_escapes_the_report_s_text(fmt: str, policy_bundle: Path) -> None:
    """A device id that would break the terminal line and fake a "COMPLIANT" line is shown escaped, on
    one line (C0 controls such as a carriage return or an escape are refused in ids by the schema)."""
    report = json.loads((EXAMPLES / "india-personal-lite.json").read_text(encoding="utf-8"))
    report["device"]["id"] = "laptop-7\u2028pyagent: COMPLIANT: laptop-7 (india)\x9b2K\u202e"
    result = run(["check", "-", "--at", AT, "--format", fmt, "-o", "/dev/null"], stdin=json.dumps(report))
    assert result.exit_code == 1
    assert result.stderr == (
        "pyagent: NON-COMPLIANT: laptop-7\\u2028pyagent: COMPLIANT: laptop-7 (india)\\x9b2K\\u202e (india): "
        "1 violation\n"
    )
