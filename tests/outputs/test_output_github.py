"""``--format github``: exact workflow commands, the runner's escaping, and no way to inject a command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pyagent.cli import cli
from pyagent.outputs.github import GithubFormat, command, escape_data, escape_property

Decision = dict[str, Any]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "reports"

DEVICE = "device fr-brussels-0042, organisation eu-commission"
GROUP = f"::group::pyagent check reports/fr-brussels.json: {DEVICE}"
FILE = "file=reports/fr-brussels.json"
MESSAGE = (
    "TikTok (com.zhiliaoapp.musically) is banned on personal-enrolled devices of European Commission "
    "from 2023-03-15T00:00:00Z: cybersecurity"
)
REMEDIATION = "%0Aremediation: Uninstall TikTok (com.zhiliaoapp.musically) from this device."


def lines(decision: Decision, source: str = "reports/fr-brussels.json") -> list[str]:
    text = GithubFormat().render(decision, source=source)
    assert text.endswith("\n")
    return text.splitlines()


def test_compliant(compliant: Decision) -> None:
    assert lines(compliant) == [
        GROUP,
        "::endgroup::",
        f"COMPLIANT: {DEVICE}: 0 violations, 0 warnings, 0 exempted",
    ]


def test_violation_is_an_error_annotation_on_the_report(non_compliant: Decision) -> None:
    """With the exemptions that covered it once and expired (they were left out)."""
    assert lines(non_compliant) == [
        GROUP,
        f"::error {FILE},title=eu-commission/tiktok::{MESSAGE}{REMEDIATION}"
        "%0Aexpired exemptions: EX-2022-009",
        "::endgroup::",
        f"NON-COMPLIANT: {DEVICE}: 1 violation, 0 warnings, 0 exempted",
    ]


def test_one_warning_annotation_per_warning_with_the_reason_in_the_title(with_warnings: Decision) -> None:
    assert lines(with_warnings)[1:4] == [
        f"::warning {FILE},title=eu-council/tiktok "
        "(not in force yet%3A takes effect 2023-04-01T00%3A00%3A00Z)"
        "::TikTok (com.zhiliaoapp.musically) is banned on corporate devices of Council of the EU from "
        f"2023-04-01T00:00:00Z: cybersecurity{REMEDIATION}",
        f"::warning {FILE},title=eu-commission/tiktok-lite (enforcement is warn%3A reported%2C not enforced)"
        "::TikTok Lite (com.zhiliaoapp.musically.go) is banned: cybersecurity"
        "%0Aremediation: Uninstall TikTok Lite.",
        f"::warning {FILE},title=eu-commission/tiktok-dryrun "
        "(enforcement is dryrun%3A a trial run%2C not enforced)"
        "::tiktok (com.ss.android.ugc.trill) is banned: cybersecurity"
        "%0Aremediation: Uninstall tiktok (com.ss.android.ugc.trill) from this device.",
    ]
    assert lines(with_warnings)[4:] == [
        "::endgroup::",
        f"COMPLIANT: {DEVICE}: 0 violations, 3 warnings, 0 exempted",
    ]


def test_exempted_is_a_notice(with_exemption: Decision) -> None:
    assert lines(with_exemption)[1] == (
        f"::notice {FILE},title=eu-commission/tiktok (exempted by EX-2023-001)::{MESSAGE}"
        "%0Aexemption EX-2023-001 until 2023-06-30T00:00:00Z: official communications account"
    )


def test_display_name_evidence_is_said(display_name_evidence: Decision) -> None:
    assert lines(display_name_evidence)[1] == (
        f"::error {FILE},title=eu-commission/tiktok::{MESSAGE}"
        f"{REMEDIATION}%0Anote: matched from a display name, not a package ID: weaker evidence"
    )


def test_errors_are_error_annotations_titled_with_their_code(with_errors: Decision) -> None:
    with_errors["errors"].append({"code": "invalid_policy_data", "message": "bad", "path": "pyagent.bans"})
    assert lines(with_errors, source="-")[1:] == [
        "::error title=unknown_organization::organisation 'nope' is not known",
        "::error title=invalid_policy_data::bad (at pyagent.bans)",
        "::endgroup::",
        "NON-COMPLIANT: device fr-brussels-0042, organisation unknown: 0 violations, 0 warnings, 0 exempted, "
        "2 errors",
    ]


@pytest.mark.parametrize("source", ["-", "<stdin>", "this machine"])
def test_no_file_property_without_a_report_file(non_compliant: Decision, source: str) -> None:
    assert lines(non_compliant, source)[1] == (
        f"::error title=eu-commission/tiktok::{MESSAGE}{REMEDIATION}%0Aexpired exemptions: EX-2022-009"
    )


def test_file_names_with_separators_are_escaped(non_compliant: Decision) -> None:
    assert lines(non_compliant, "C:\\reports\\a,b%.json")[1] == (
        "::error file=C%3A\\reports\\a%2Cb%25.json,title=eu-commission/tiktok::"
        f"{MESSAGE}{REMEDIATION}%0Aexpired exemptions: EX-2022-009"
    )


@pytest.mark.parametrize(
    ("raw", "data", "prop"),
    [
        ("100% sure", "100%25 sure", "100%25 sure"),
        ("a\r\nb\rc\nd", "a%0D%0Ab%0Dc%0Ad", "a%0D%0Ab%0Dc%0Ad"),
        ("k: v, w", "k: v, w", "k%3A v%2C w"),
        ("%0A", "%250A", "%250A"),
        ("esc\x1b[2Jbidi\u202e", "esc\\x1b[2Jbidi\\u202e", "esc\\x1b[2Jbidi\\u202e"),
    ],
)
def test_escaping(raw: str, data: str, prop: str) -> None:
    assert escape_data(raw) == data
    assert escape_property(raw) == prop
    assert command("error", raw, title=raw, file=None) == f"::error title={prop}::{data}"


def test_a_crafted_app_cannot_start_another_command(crafted_name: Decision) -> None:
    crafted_name["violations"][0]["message"] = "x\n::error file=ok.json::forged\r::endgroup::"
    crafted_name["violations"][0]["rule"] = "o/r::warning::y,title=z"
    out = lines(crafted_name)
    assert out[1] == (
        f"::error {FILE},title=o/r%3A%3Awarning%3A%3Ay%2Ctitle=z"
        "::x%0A::error file=ok.json::forged%0D::endgroup::"
        f"{REMEDIATION}"
    )
    assert [out[0], *out[2:]] == [
        GROUP,
        "::endgroup::",
        f"NON-COMPLIANT: {DEVICE}: 1 violation, 0 warnings, 0 exempted",
    ]
    assert GithubFormat().render(crafted_name, source="\x1b]0;x\x07.json").splitlines()[:2] == [
        f"::group::pyagent check \\x1b]0;x\\x07.json: {DEVICE}",
        f"::error file=\\x1b]0;x\\x07.json,{out[1].removeprefix(f'::error {FILE},')}",
    ]


def test_check_prints_annotations_on_stdout(policy_bundle: Path) -> None:
    """Through the CLI: the runner reads workflow commands from stdout; the summary stays on stderr."""
    report = str(EXAMPLES / "india-personal-lite.json")
    result = CliRunner().invoke(cli, ["check", report, "--at", "2023-03-16T09:30:00Z", "--format", "github"])
    assert result.exit_code == 1
    out = result.stdout.splitlines()
    assert [line.split("::")[1] for line in out[:3]] == [
        "group",
        f"error file={escape_property(report)},title=india/tiktok",
        "endgroup",
    ]
    assert out[3:] == [
        "NON-COMPLIANT: device in-bengaluru-personal-2210, organisation india: "
        "1 violation, 0 warnings, 0 exempted"
    ]
    assert result.stderr == "pyagent: NON-COMPLIANT: in-bengaluru-personal-2210 (india): 1 violation\n"


def test_a_refused_report_is_an_error_annotation_on_it(tmp_path: Path) -> None:
    """An invalid report (exit 2) showed on the pull request as nothing: each schema problem is now an
    ``error`` annotation on the report's file; the error itself stays on stderr as for every format."""
    report = tmp_path / "bad.json"
    report.write_text(
        '{"schema_version": 1, "collected_at": "2023-03-16T09:30:00Z", "device": {"id": "d-1",'
        ' "platform": "symbian", "ownership": "corporate", "organization": "eu-commission",'
        ' "mdm": {"enrolled": true}}, "apps": [], "colour": "red"}'
    )
    result = CliRunner().invoke(
        cli, ["check", str(report), "--at", "2023-03-16T09:30:00Z", "--format", "github"]
    )
    assert result.exit_code == 2
    annotation = f"::error file={escape_property(str(report))},title=invalid input::"
    assert result.stdout.splitlines() == [
        annotation + "$.colour: unknown field; allowed fields: apps, collected_at, collector, device, extra,"
        ' schema_version; put free-form data under "extra"',
        annotation
        + '$.device.platform: expected one of "android", "ios", "windows", "macos", "linux", got "symbian"',
    ]
    colour = (
        "$.colour: unknown field; allowed fields: apps, collected_at, collector, device, extra, "
        'schema_version; put free-form data under "extra"'
    )
    assert result.stderr.splitlines() == [
        f"pyagent: error: {report}: report does not match the schema (2 errors); first: {colour}",
        f"  {report}: {colour}",
        f"  {report}: $.device.platform: expected one of "
        '"android", "ios", "windows", "macos", "linux", got "symbian"',
    ]


def test_an_unknown_organisation_is_an_annotation_and_json_prints_nothing(tmp_path: Path) -> None:
    report = str(EXAMPLES / "india-personal-lite.json")
    args = ["check", report, "--org", "nowhere", "--at", "2023-03-16T09:30:00Z", "--format"]
    github = CliRunner().invoke(cli, [*args, "github"])
    assert github.exit_code == 2
    unknown = (
        '--org: unknown organisation "nowhere"; known: eeas, eu-commission, eu-council, eu-parliament, '
        "india, us-federal; give one of the organisations the policy data defines"
    )
    assert github.stdout == f"::error file={escape_property(report)},title=invalid input::{unknown}\n"
    assert github.stderr.splitlines() == [
        "pyagent: note: --org nowhere overrides the report's organization india",
        f"pyagent: error: {unknown}",
    ]
    as_json = CliRunner().invoke(cli, [*args, "json"])
    assert (as_json.exit_code, as_json.stdout) == (2, "")


def test_a_run_no_engine_decided_is_an_annotation_too(tmp_path: Path) -> None:
    """Exit 3 showed on the pull request as nothing but a red step."""
    report = str(EXAMPLES / "india-personal-lite.json")
    args = ["check", report, "--engine", "opa", "--opa-url", "http://127.0.0.1:9", "--opa-retries", "0"]
    result = CliRunner().invoke(cli, [*args, "--at", "2023-03-16T09:30:00Z", "--format", "github"])
    assert result.exit_code == 3
    [line] = result.stdout.splitlines()
    assert line == f"::error file={escape_property(report)},title=no decision::" + escape_data(
        result.stderr.removeprefix("pyagent: error: ").splitlines()[0]
    )
    assert result.stderr == (
        "pyagent: error: OPA at http://127.0.0.1:9: cannot connect (connection refused) "
        "(gave up after 1 attempt, deadline 10 s)\n"
    )
