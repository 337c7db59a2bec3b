"""`pyagent collect` and `check` without a report, through the real CLI, on real tool output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyagent.cli import cli
from pyagent.report.validate import report_validator
from tests.helpers.cli import invoke as run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "collectors"
AT = "2023-03-16T09:30:00Z"
FACTS = ["--device-id", "laptop-17", "--ownership", "corporate", "--mdm-enrolled", "--org", "eu-commission"]


def dpkg_listing() -> dict[str, str]:
    """`dpkg-query -W` on this machine by package name (libc6:amd64 as libc6), read until two reads agree
    (other jobs may be installing)."""
    previous: dict[str, str] | None = None
    for _ in range(10):
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Package}\t${Version}\t${db:Status-Abbrev}\n"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows = [line.split("\t") for line in out.splitlines() if line]
        # Packages whose files are gone (config-files, not-installed) are not installed apps.
        current = {name: version for name, version, status in rows if status[1:2] not in ("c", "n")}
        if current == previous:
            return current
        previous = current
    raise AssertionError("dpkg database kept changing")


def test_linux_collect_reports_every_dpkg_package_and_decides(policy_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "laptop.json"
    expected = dpkg_listing()
    result = run(["collect", "--source", "linux", *FACTS, "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    report = json.loads(out.read_text())
    dpkg_apps = {app["id"]: app.get("version") for app in report["apps"] if app.get("source") == "dpkg"}
    if dpkg_apps != expected:  # a concurrent install between the two reads: read once more
        expected = dpkg_listing()
    assert dpkg_apps == expected
    assert len(dpkg_apps) > 100
    assert report_validator().validate(report).valid
    assert report["device"] == {
        **report["device"],
        "id": "laptop-17",
        "platform": "linux",
        "ownership": "corporate",
        "organization": "eu-commission",
        "mdm": {"enrolled": True},
    }
    decided = run(["check", str(out), "--at", AT, "--format", "json"])
    assert decided.exit_code == 0
    assert json.loads(decided.stdout)["allow"] is True


def test_personal_phone_with_outlook_and_tiktok_is_non_compliant_for_the_council(
    policy_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "phone.json"
    capture = FIXTURES / "android-pm" / "personal-outlook-tiktok-f-i-versioncode.txt"
    result = run(
        [
            "collect",
            "--source",
            "android-pm",
            "--from",
            str(capture),
            "--device-id",
            "phone-1",
            "--ownership",
            "personal",
            "--no-mdm-enrolled",
            "--org",
            "eu-council",
            "-o",
            str(out),
        ]
    )
    assert result.exit_code == 0, result.stderr
    decided = run(["check", str(out), "--at", AT, "--format", "json"])
    assert decided.exit_code == 1
    decision = json.loads(decided.stdout)
    assert [[v["rule"], v["app_id"], v["scope"]] for v in decision["violations"]] == [
        ["eu-council/tiktok", "com.zhiliaoapp.musically", "personal-with-work-apps"]
    ]


def test_same_phone_is_compliant_for_the_commission_when_not_enrolled(
    policy_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "phone.json"
    capture = FIXTURES / "android-pm" / "personal-outlook-tiktok-f-i-versioncode.txt"
    run(
        [
            "collect",
            "--source",
            "android-pm",
            "--from",
            str(capture),
            "--device-id",
            "phone-1",
            "--ownership",
            "personal",
            "--no-mdm-enrolled",
            "--org",
            "eu-commission",
            "-o",
            str(out),
        ]
    )
    assert run(["check", str(out), "--at", AT]).exit_code == 0


def test_config_file_supplies_facts_and_flags_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        '[device]\nid = "cfg-1"\norganization = "eu-council"\nownership = "personal"\nmdm_enrolled = false\n'
    )
    monkeypatch.setenv("PYAGENT_CONFIG", str(config))
    capture = FIXTURES / "android-pm" / "personal-plain.txt"
    result = run(["collect", "--source", "android-pm", "--from", str(capture), "--device-id", "flag-1"])
    assert result.exit_code == 0, result.stderr
    device = json.loads(result.stdout)["device"]
    assert (device["id"], device["organization"], device["ownership"], device["mdm"]) == (
        "flag-1",
        "eu-council",
        "personal",
        {"enrolled": False},
    )


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("--device-id", "give --device-id ID, or set device.id in"),
        ("--ownership", "give --ownership corporate|personal, or set device.ownership in"),
        ("--mdm-enrolled", "give --mdm-enrolled/--no-mdm-enrolled, or set device.mdm_enrolled in"),
    ],
)
def test_missing_fact_names_flag_and_config_key(
    missing: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty.toml").write_text("")  # an empty config, not the machine's
    monkeypatch.setenv("PYAGENT_CONFIG", str(tmp_path / "empty.toml"))
    args = {
        "--device-id": ["--device-id", "x"],
        "--ownership": ["--ownership", "personal"],
        "--mdm-enrolled": ["--mdm-enrolled"],
    }
    given = [a for flag, pair in args.items() if flag != missing for a in pair]
    capture = FIXTURES / "android-pm" / "personal-plain.txt"
    result = run(["collect", "--source", "android-pm", "--from", str(capture), *given])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_check_without_report_collects_this_machine(
    policy_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        '[device]\nid = "this-box"\norganization = "india"\nownership = "corporate"\nmdm_enrolled = true\n'
    )
    monkeypatch.setenv("PYAGENT_CONFIG", str(config))
    result = run(["check", "--at", AT, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    decision = json.loads(result.stdout)
    assert (decision["device_id"], decision["organization"], decision["allow"]) == ("this-box", "india", True)


def test_check_without_report_and_without_facts_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty.toml").write_text("")  # an empty config, not the machine's
    monkeypatch.setenv("PYAGENT_CONFIG", str(tmp_path / "empty.toml"))
    result = run(["check", "--at", AT])
    assert result.exit_code == 2
    assert result.stderr == (
        "pyagent: error: missing device facts: give --ownership corporate|personal, "
        "--mdm-enrolled/--no-mdm-enrolled, --org ORG, or set device.ownership, device.mdm_enrolled, "
        f"device.organization in {tmp_path / 'empty.toml'}\n"
    )


def test_check_without_report_takes_facts_from_flags(
    policy_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    (tmp_path / "empty.toml").write_text("")  # an empty config, not the machine's
    monkeypatch.setenv("PYAGENT_CONFIG", str(tmp_path / "empty.toml"))
    result = run(
        [
            "check",
            "--org",
            "india",
            "--ownership",
            "personal",
            "--no-mdm-enrolled",
            "--at",
            AT,
            "--format",
            "json",
        ]
    )
    assert result.exit_code == 0, result.stderr
    decision = json.loads(result.stdout)
    assert (decision["device_id"], decision["organization"]) == (socket.gethostname(), "india")


def test_fact_flags_with_a_report_are_a_usage_error() -> None:
    report = Path(__file__).resolve().parents[2] / "examples" / "reports" / "india-personal-lite.json"
    result = run(["check", str(report), "--ownership", "corporate"])
    assert result.exit_code == 2
    assert "describe this machine" in result.stderr


def test_intune_name_derived_violation_says_so(policy_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "intune.json"
    export = FIXTURES / "intune" / "android-fully-managed-tiktok-detectedapps.json"
    result = run(
        [
            "collect",
            "--source",
            "intune",
            "--from",
            str(export),
            "--device-id",
            "m-1",
            "--ownership",
            "corporate",
            "--mdm-enrolled",
            "--org",
            "us-federal",
            "-o",
            str(out),
        ]
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(out.read_text())
    assert all(app.get("evidence") == "display_name" for app in report["apps"])
    text = run(["check", str(out), "--at", AT])
    assert text.exit_code == 1
    assert "matched from a display name, not a package ID: weaker evidence" in text.stderr
    data = run(["check", str(out), "--at", AT, "--format", "json"])
    assert {v["evidence"] for v in json.loads(data.stdout)["violations"]} == {"display_name"}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02\xff\xfe", "not"),
        (b'[{"bundle_identifier": "x"}]\n', "capture.txt:1: not a `pm list packages` line"),
    ],
    ids=["empty", "binary", "wrong-format"],
)
def test_bad_android_capture_exits_2(content: bytes, fragment: str, tmp_path: Path) -> None:
    capture = tmp_path / "capture.txt"
    capture.write_bytes(content)
    result = run(
        [
            "collect",
            "--source",
            "android-pm",
            "--from",
            str(capture),
            "--device-id",
            "p",
            "--ownership",
            "personal",
            "--no-mdm-enrolled",
        ]
    )
    assert result.exit_code == 2
    assert str(capture) in result.stderr and fragment in result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_adb_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = run(
        [
            "collect",
            "--source",
            "android-pm",
            "--serial",
            "R58M123",
            "--device-id",
            "p",
            "--ownership",
            "personal",
            "--no-mdm-enrolled",
        ]
    )
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr == "pyagent: error: adb: not found (looked for 'adb' on PATH)\n"


def test_this_machine_is_named_by_its_host_name_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    (tmp_path / "empty.toml").write_text("")  # an empty config, not the machine's
    monkeypatch.setenv("PYAGENT_CONFIG", str(tmp_path / "empty.toml"))
    result = run(["collect", "--source", "linux", "--ownership", "corporate", "--mdm-enrolled"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["device"]["id"] == socket.gethostname()


def test_intune_windows_store_app_by_package_name_is_denied(policy_bundle: Path, tmp_path: Path) -> None:
    export = tmp_path / "detectedapps.json"
    entry = {"displayName": "BytedancePte.Ltd.TikTok", "version": "1.0.19.0", "platform": "windows"}
    export.write_text(json.dumps({"value": [entry]}), encoding="utf-8")
    out = tmp_path / "report.json"
    flags = ["--device-id", "w-2", "--ownership", "corporate", "--mdm-enrolled", "--org", "us-federal"]
    result = run(["collect", "--source", "intune", "--from", str(export), *flags, "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    data = run(["check", str(out), "--at", AT, "--format", "json"])
    assert data.exit_code == 1
    [violation] = json.loads(data.stdout)["violations"]
    assert (violation["rule"], violation["app_id"], violation["evidence"]) == (
        "us-federal/tiktok",
        "BytedancePte.Ltd.TikTok",
        "display_name",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--source", "linux", "--from", "x.txt"],
            "--source linux does not take --from (it reads this machine)",
        ),
        (
            ["--source", "intune", "--from", "x.json", "--user", "3"],
            "--source intune does not take --user (it takes --from, --platform)",
        ),
        (
            ["--source", "osquery", "--from", "x.json", "--platform", "ios", "--serial", "s"],
            "--source osquery does not take --serial, --platform (it takes --from, --table)",
        ),
    ],
)
def test_a_flag_the_source_does_not_read_is_named_as_a_flag(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["collect", *args])
    assert result.exit_code == 2
    assert result.stderr == f"pyagent: error: {message} (see pyagent collect --help)\n"


def test_an_export_is_read_from_stdin_with_from_dash() -> None:
    flags = ["--device-id", "p-1", "--ownership", "corporate", "--mdm-enrolled", "--org", "india"]
    capture = "package:com.android.chrome\r\npackage:com.zhiliaoapp.musically\r\n"
    result = CliRunner().invoke(
        cli, ["collect", "--source", "android-pm", "--from", "-", *flags], input=capture
    )
    assert result.exit_code == 0, result.stderr
    assert [app["id"] for app in json.loads(result.stdout)["apps"]] == [
        "com.android.chrome",
        "com.zhiliaoapp.musically",
    ]
    empty = CliRunner().invoke(cli, ["collect", "--source", "android-pm", "--from", "-", *flags], input="")
    assert (empty.exit_code, empty.stderr) == (2, "pyagent: error: <stdin>: input is empty\n")
    bad = CliRunner().invoke(cli, ["collect", "--source", "android-pm", "--from", "-", *flags], input="x\n")
    assert bad.exit_code == 2
    assert bad.stderr == "pyagent: error: <stdin>:1: not a `pm list packages` line: 'x'\n"


def test_the_report_never_overwrites_the_export_it_reads(tmp_path: Path) -> None:
    capture = tmp_path / "pm.txt"
    capture.write_text("package:com.zhiliaoapp.musically\n", encoding="utf-8")
    flags = ["--device-id", "p-1", "--ownership", "corporate", "--mdm-enrolled", "--org", "india"]
    same = str(tmp_path / "." / "pm.txt")
    result = CliRunner().invoke(
        cli, ["collect", "--source", "android-pm", "--from", str(capture), *flags, "-o", same]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"pyagent: error: -o {same} is the --from file: writing the report would overwrite it "
        "(see pyagent collect --help)\n"
    )
    assert capture.read_text(encoding="utf-8") == "package:com.zhiliaoapp.musically\n"


#: `pm list packages -U --user all` of a personal phone: TikTok for the owner (user 0), and a work
#: profile (user 10) whose one app is the organisation's own mail client, on no list of work apps.
WORK_PROFILE_CAPTURE = (
    "package:com.zhiliaoapp.musically uid:10234\n"
    "package:com.android.chrome uid:10120,1010120\n"
    "package:com.example.corpmail uid:1010300\n"
)


@pytest.mark.parametrize(
    ("flag", "work_profile", "exit_code"),
    [([], None, 0), (["--work-profile"], True, 1), (["--no-work-profile"], False, 0)],
)
def test_a_capture_s_work_profile_is_stated_with_a_flag(
    policy_bundle: Path, tmp_path: Path, flag: list[str], work_profile: bool | None, exit_code: int
) -> None:
    """A capture cannot tell a work profile from another user (live adb reads the user's flags): the
    flag states it, and a personal phone with one is in the Council's scope (domain.md)."""
    capture = tmp_path / "pm.txt"
    capture.write_text(WORK_PROFILE_CAPTURE)
    out = tmp_path / "phone.json"
    facts = ["--device-id", "p4", "--ownership", "personal", "--no-mdm-enrolled", "--org", "eu-council"]
    result = run(["collect", "--source", "android-pm", "--from", str(capture), *facts, *flag, "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    note = (
        "pyagent: note: the capture lists Android user 10 besides user 0; if one is a work profile, say so "
        "with --work-profile (a capture cannot tell; live adb does)\n"
    )
    assert (note in result.stderr) is (work_profile is None)
    assert json.loads(out.read_text())["device"].get("work_profile") is work_profile
    decided = run(["check", str(out), "--at", AT, "--format", "json"])
    assert decided.exit_code == exit_code
    violations = json.loads(decided.stdout)["violations"]
    expected = (
        [["eu-council/tiktok", "com.zhiliaoapp.musically", "personal-with-work-apps"]] if exit_code else []
    )
    assert [[v["rule"], v["app_id"], v["scope"]] for v in violations] == expected


def test_work_profile_is_a_phone_s_fact(tmp_path: Path) -> None:
    export = tmp_path / "apps.json"
    export.write_text('[{"name": "bash", "version": "5", "release": "1"}]')
    result = run(["collect", "--source", "osquery", "--from", str(export), *FACTS, "--work-profile"])
    assert result.exit_code == 2
    assert (
        "--source osquery does not take --work-profile/--no-work-profile (a phone's: android-pm, intune)"
        in (result.stderr)
    )
