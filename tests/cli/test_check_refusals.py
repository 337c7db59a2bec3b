"""`pyagent check` refusing through the real CLI (CONTRACT section 3): each bad report, flag, instant,
path or engine is one line that says what and where, exit 2, or exit 3 when no decision could be
obtained; never a verdict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import AT, EXAMPLES, run

KNOWN_ORGS = "eeas, eu-commission, eu-council, eu-parliament, india, us-federal"


def test_unknown_organization_from_the_flag_is_blamed_on_the_flag(engine_args: list[str]) -> None:
    result = run(
        ["check", str(EXAMPLES / "india-personal-lite.json"), "--org", "eu-senate", "--at", AT, *engine_args]
    )
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "pyagent: note: --org eu-senate overrides the report's organization india\n"
        f'pyagent: error: --org: unknown organisation "eu-senate"; known: {KNOWN_ORGS}; '
        "give one of the organisations the policy data defines\n"
    )


def test_unknown_organization_from_the_report_is_blamed_on_the_report(
    engine_args: list[str], tmp_path: Path
) -> None:
    report = json.loads((EXAMPLES / "india-personal-lite.json").read_text())
    report["device"]["organization"] = "eu-senate"
    path = tmp_path / "senate.json"
    path.write_text(json.dumps(report))
    result = run(["check", str(path), "--at", AT, *engine_args])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f'pyagent: error: {path}: unknown organisation "eu-senate"; known: {KNOWN_ORGS}; '
        "give one of the organisations the policy data defines\n"
    )


def test_missing_organization_exits_2(engine_args: list[str], tmp_path: Path) -> None:
    report = json.loads((EXAMPLES / "india-personal-lite.json").read_text())
    del report["device"]["organization"]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    result = run(["check", str(path), "--at", AT, *engine_args])
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        f"pyagent: error: {path}: the report names no organisation (device.organization) and none was "
        "given; give --org, or set device.organization in the report\n",
    )


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
    assert (result.exit_code, result.stdout, result.stderr) == (
        3,
        "",
        f"pyagent: error: OPA at {url}: cannot connect (connection refused) (gave up after 3 attempts, "
        "deadline 10 s)\n",
    )


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
