"""`pyagent check` through the real CLI, on both engines, against CONTRACT sections 2-3."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from pyagent.cli import cli
from pyagent.report.validate import decision_validator
from tests.helpers.opa_server import RunningOpa
from tests.helpers.policy_data import shipped_revision

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "reports"
AT = "2023-03-16T09:30:00Z"

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


def run(args: list[str], stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli, args, input=stdin)


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


def test_unknown_organization_exits_2_and_names_it(engine_args: list[str]) -> None:
    result = run(
        ["check", str(EXAMPLES / "india-personal-lite.json"), "--org", "eu-senate", "--at", AT, *engine_args]
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert 'unknown organisation "eu-senate"' in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_organization_exits_2(engine_args: list[str], tmp_path: Path) -> None:
    report = json.loads((EXAMPLES / "india-personal-lite.json").read_text())
    del report["device"]["organization"]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    result = run(["check", str(path), "--at", AT, *engine_args])
    assert result.exit_code == 2
    assert "give --org" in result.stderr


def test_schema_invalid_report_exits_2_with_every_error(engine_args: list[str], tmp_path: Path) -> None:
    report = json.loads((EXAMPLES / "india-personal-lite.json").read_text())
    report["device"]["ownershp"] = "personal"
    report["device"]["platform"] = "symbian"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(report))
    result = run(["check", str(path), "--at", AT, *engine_args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"{path}: $.device.platform:" in result.stderr
    assert f'{path}: $.device.ownershp: unknown field (did you mean "ownership"?)' in result.stderr


@pytest.mark.parametrize(
    "at",
    [
        "yesterday", "2023-03-16", "2023-03-16T09:30:00", "2023-02-30T00:00:00Z", "", " ",
        "2023-03-16T09:30:00Z\n",  # ``$`` let a trailing newline through, and OPA refuses it
        "\uff12\uff10\uff12\uff13-03-16T09:30:00Z",  # fullwidth digits: int() reads them, OPA does not
        "2023-03-16T09:30:00+0\u0661:00",  # an Arabic-Indic one in the offset
    ],
)  # fmt: skip
def test_bad_at_exits_2(at: str) -> None:
    result = run(["check", str(EXAMPLES / "india-personal-lite.json"), "--at", at])
    assert result.exit_code == 2
    assert f"--at: {at!r} is not an RFC 3339 timestamp" in result.stderr


@pytest.mark.parametrize("command", ["check", "fleet"])
@pytest.mark.parametrize(
    "at", ["2300-01-01T00:00:00Z", "1000-01-01T00:00:00Z", "2262-04-11T23:47:16.854775808Z",
           "1677-09-21T01:12:43.145224191+01:00"],
)  # fmt: skip
def test_an_at_outside_opa_s_clock_is_blamed_on_at(command: str, at: str) -> None:
    """Valid RFC 3339, but outside the int64 nanoseconds of time.parse_rfc3339_ns: a usage error that
    names --at and the range, not the report."""
    result = run([command, str(EXAMPLES / "india-personal-lite.json"), "--at", at])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"pyagent: error: --at: {at!r} is outside the instants OPA can evaluate "
        "(1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z)\n"
    )


def test_the_ends_of_opa_s_clock_are_evaluated() -> None:
    """India's ban (2020) is in force at the last instant and not yet at the first."""
    report = str(EXAMPLES / "india-personal-lite.json")
    assert run(["check", report, "--at", "2262-04-11T23:47:16.854775807Z"]).exit_code == 1
    assert run(["check", report, "--at", "1677-09-21T01:12:43.145224192+01:00"]).exit_code == 0


def test_missing_report_file_exits_2(tmp_path: Path) -> None:
    result = run(["check", str(tmp_path / "nope.json"), "--at", AT])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: {tmp_path / 'nope.json'}: report not found\n",
    )


def test_bad_engine_choice_is_a_usage_error() -> None:
    result = run(["check", str(EXAMPLES / "india-personal-lite.json"), "--engine", "cloud"])
    assert (result.exit_code, result.stderr) == (
        2, "pyagent: error: Invalid value for '--engine': 'cloud' is not one of 'auto', 'opa', 'embedded'. "
        "(see pyagent check --help)\n",
    )  # fmt: skip


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
    assert result.exit_code == 1
    assert result.stdout.strip()
    assert "NON-COMPLIANT" in result.stderr
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


def test_unreachable_opa_exits_3_never_allow() -> None:
    from tests.helpers.opa_server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = run(
        [
            "check",
            str(EXAMPLES / "eu-commission-corporate-clean.json"),
            "--at",
            AT,
            "--engine",
            "opa",
            "--opa-url",
            url,
            "--format",
            "json",
        ]
    )
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "cannot connect" in result.stderr


def test_missing_named_bundle_exits_2(tmp_path: Path) -> None:
    result = run(
        [
            "check",
            str(EXAMPLES / "eu-commission-corporate-clean.json"),
            "--at",
            AT,
            "--engine",
            "embedded",
            "--bundle",
            str(tmp_path / "none.tar.gz"),
        ]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"pyagent: error: --bundle {tmp_path / 'none.tar.gz'}: no such file "
        "(the compiled policy bundle to decide with)\n"
    )


def test_a_bundle_behind_a_directory_this_user_may_not_enter_is_named(policy_bundle: Path) -> None:
    """Path.is_file() raises there (Python 3.11): it was an internal error, exit 3."""
    from tests.helpers.unprivileged import as_unprivileged, shared_dir

    with shared_dir() as directory:
        hidden = directory / "private"
        hidden.mkdir(mode=0o700)
        shutil.copy(policy_bundle, hidden / "bundle.tar.gz")
        report = str(EXAMPLES / "eu-commission-corporate-clean.json")
        assert run(["check", report, "--at", AT, "--engine", "embedded"]).exit_code == 0  # (imports loaded)
        with as_unprivileged():
            result = run(["check", report, "--at", AT, "--bundle", str(hidden / "bundle.tar.gz")])
    assert (result.exit_code, result.stderr) == (
        2, f"pyagent: error: --bundle {hidden / 'bundle.tar.gz'}: cannot reach it: Permission denied "
        "(the compiled policy bundle to decide with)\n",
    )  # fmt: skip


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


def test_a_control_character_in_an_id_is_refused_with_its_place(policy_bundle: Path) -> None:
    """What a CRLF capture cut by hand leaves: an id no ban matches, so a device that would be allowed."""
    report = json.loads((EXAMPLES / "india-personal-lite.json").read_text(encoding="utf-8"))
    report["apps"][0]["id"] += "\r"
    result = run(["check", "-", "--at", AT], stdin=json.dumps(report))
    assert result.exit_code == 2
    assert result.stderr == (
        "pyagent: error: <stdin>: $.apps[0].id: must not contain a control character (\\u000d), found at "
        f"position {len(report['apps'][0]['id']) - 1}: {json.dumps(report['apps'][0]['id'])}\n"
    )


def test_a_raw_del_in_an_id_is_refused_too(policy_bundle: Path, tmp_path: Path) -> None:
    """JSON allows DEL unescaped (not the C0 controls): the loader's shortcut must not skip it."""
    report = json.loads((EXAMPLES / "india-personal-lite.json").read_text(encoding="utf-8"))
    report["apps"][0]["id"] += "\x7f"
    path = tmp_path / "del.json"
    path.write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")
    assert b"\x7f" in path.read_bytes()
    result = run(["check", str(path), "--at", AT])
    assert result.exit_code == 2
    assert "$.apps[0].id: must not contain a control character (\\u007f)" in result.stderr
