"""An inventory that cannot list a kind of app says so, and the decision says what went unchecked: a
Windows export from osquery before 5.17 lists no Store (MSIX) apps, so TikTok's Store app cannot be
found in it. Before, such a device was decided compliant with no word; now it is compliant with a
`not_listed` warning, on both engines."""

from __future__ import annotations

import json
import plistlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pyagent import __version__
from pyagent.cli import cli
from pyagent.collectors.osquery import OsqueryCollector
from tests.collectors.conftest import FIXTURES
from tests.helpers.opa_server import RunningOpa

AT = "2023-03-16T09:30:00Z"
FACTS = ["--device-id", "pc-7", "--ownership", "corporate", "--mdm-enrolled", "--org", "eu-commission"]
UNCHECKED = {
    "rule": "eu-commission/tiktok",
    "ban": "tiktok",
    "app_id": "BytedancePte.Ltd.TikTok_6yccndn6064se",
    "message": "TikTok (BytedancePte.Ltd.TikTok_6yccndn6064se, 9NH2GPH4JZS4) could not be checked on "
    "corporate devices of European Commission: the inventory does not list Microsoft Store apps",
    "remediation": "Take the inventory again with a collector that lists Store apps (osquery 5.17 or later: "
    "programs.package_family_name).",
    "effective_from": "2023-03-15T00:00:00Z",
    "scope": "corporate",
    "enforcement": "deny",
    "reason": "not_listed",
}


def collect(export: Path, tmp_path: Path) -> Path:
    report = tmp_path / f"{export.stem}.report.json"
    done = CliRunner().invoke(
        cli, ["collect", "--source", "osquery", "--from", str(export), *FACTS, "-o", str(report)]
    )
    assert done.exit_code == 0, done.output
    return report


def decide(report: Path, *engine: str) -> tuple[int, dict[str, Any]]:
    done = CliRunner().invoke(cli, ["check", str(report), "--at", AT, "--format", "json", *engine])
    return done.exit_code, json.loads(done.stdout)


def test_the_collector_says_which_kind_of_app_it_could_not_list() -> None:
    old = OsqueryCollector(from_file=FIXTURES / "osquery" / "windows-programs-osquery-5.16.json").collect()
    new = OsqueryCollector(
        from_file=FIXTURES / "osquery" / "windows-programs-osquery-5.17-msix.json"
    ).collect()
    assert (old.not_listed, old.collector_json()) == (
        ("windows-store",),
        {"name": "osquery", "version": __version__, "not_listed": ["windows-store"]},
    )
    assert (new.not_listed, new.collector_json()) == ((), {"name": "osquery", "version": __version__})


@pytest.mark.parametrize("engine", ["embedded", "opa"])
def test_a_store_ban_is_reported_unchecked_on_both_engines(
    engine: str, tmp_path: Path, policy_bundle: Path, opa_server: RunningOpa
) -> None:
    flags = ["--engine", "opa", "--opa-url", opa_server.url] if engine == "opa" else ["--engine", "embedded"]
    old = collect(FIXTURES / "osquery" / "windows-programs-osquery-5.16.json", tmp_path)
    assert json.loads(old.read_text())["collector"]["not_listed"] == ["windows-store"]
    code, decision = decide(old, *flags)
    assert (code, decision["allow"], decision["violations"], decision["warnings"]) == (
        0,
        True,
        [],
        [UNCHECKED],
    )
    new = collect(FIXTURES / "osquery" / "windows-programs-osquery-5.17-msix.json", tmp_path)
    code, decision = decide(new, *flags)  # the Store app listed: found, and nothing left unchecked
    assert (code, decision["warnings"]) == (1, [])
    assert [(v["rule"], v["app_id"]) for v in decision["violations"]] == [
        ("eu-commission/tiktok", "BytedancePte.Ltd.TikTok_6yccndn6064se")
    ]


def test_a_report_cannot_name_a_kind_the_schema_does_not_know(tmp_path: Path) -> None:
    report = collect(FIXTURES / "osquery" / "windows-programs-osquery-5.16.json", tmp_path)
    document = json.loads(report.read_text())
    document["collector"]["not_listed"] = ["everything"]
    report.write_text(json.dumps(document))
    done = CliRunner().invoke(cli, ["validate", str(report)])
    assert done.exit_code == 2
    assert "$.collector.not_listed[0]" in done.output


@pytest.mark.parametrize("engine", ["embedded", "opa"])
def test_a_work_profile_export_leaves_the_phones_bans_unchecked_on_both_engines(
    engine: str, tmp_path: Path, policy_bundle: Path, opa_server: RunningOpa
) -> None:
    """Intune sees inside an Android work profile only: a Council personal phone with Outlook there was
    compliant with no word, though TikTok on its personal side is what the Council bans."""
    flags = ["--engine", "opa", "--opa-url", opa_server.url] if engine == "opa" else ["--engine", "embedded"]
    report = tmp_path / "work-profile.report.json"
    facts = ["--device-id", "p-9", "--ownership", "personal", "--no-mdm-enrolled", "--org", "eu-council"]
    export = FIXTURES / "intune" / "android-work-profile-detectedapps.json"
    done = CliRunner().invoke(
        cli, ["collect", "--source", "intune", "--from", str(export), *facts, "-o", str(report)]
    )
    assert done.exit_code == 0, done.output
    document = json.loads(report.read_text())
    assert (document["device"]["work_profile"], document["collector"]["not_listed"]) == (
        True,
        ["unmanaged-apps"],
    )
    code, decision = decide(report, *flags)
    assert (code, decision["allow"], decision["violations"]) == (0, True, [])
    assert [(w["rule"], w["app_id"], w["scope"], w["reason"]) for w in decision["warnings"]] == [
        ("eu-council/tiktok", "com.zhiliaoapp.musically", "personal-with-work-apps", "not_listed")
    ]
    assert decision["warnings"][0]["message"].endswith(
        "the inventory lists only the apps the organisation manages (an MDM's, of a personal device or a "
        "work profile), not the rest of the device"
    )


@pytest.mark.parametrize(("ownership", "not_listed"), [("personal", ["unmanaged-apps"]), ("corporate", None)])
def test_an_intune_export_of_a_personal_device_says_its_own_apps_are_not_listed(
    ownership: str, not_listed: list[str] | None, tmp_path: Path, policy_bundle: Path
) -> None:
    """Intune lists a personally owned device's managed apps only (its unmanaged ones on corporate
    devices alone): an iPhone in India, where every device is in scope, passed without a word."""
    report = tmp_path / "iphone.report.json"
    facts = ["--device-id", "i-1", "--ownership", ownership, "--no-mdm-enrolled", "--org", "india"]
    export = tmp_path / "detectedApps.json"  # (Graph's shape: the fixtures' iPhone has TikTok, found)
    export.write_text(json.dumps({"value": [
        {"id": "3a1b", "displayName": "Microsoft Outlook", "version": "4.2345.0", "platform": "ios"},
        {"id": "3a1c", "displayName": "Microsoft Teams", "version": "6.1.0", "platform": "ios"},
    ]}))  # fmt: skip
    done = CliRunner().invoke(
        cli, ["collect", "--source", "intune", "--from", str(export), *facts, "-o", str(report)]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(report.read_text())["collector"].get("not_listed") == not_listed
    code, decision = decide(report, "--engine", "embedded")
    unchecked = [(w["rule"], w["app_id"], w["reason"]) for w in decision["warnings"]]
    assert (code, unchecked) == (
        0,
        [("india/tiktok", "com.zhiliaoapp.musically", "not_listed")] if not_listed else [],
    )


@pytest.mark.parametrize(("enrolment", "not_listed"), [("EnrollmentID", ["unmanaged-apps"]), ("UDID", None)])
def test_an_apple_user_enrolment_response_says_the_personal_side_is_not_listed(
    enrolment: str, not_listed: list[str] | None, tmp_path: Path, policy_bundle: Path
) -> None:
    """Under Apple User Enrolment (the response names an EnrollmentID, not the device's UDID) an iPhone
    lists its managed apps only: a Commission personal phone with Outlook alone passed without a word."""
    response = tmp_path / "InstalledApplicationList.plist"
    response.write_bytes(plistlib.dumps({
        "CommandUUID": "0F6A2C1E-5B1D-4C62-9C1A-2A7E4D3B9F10", "Status": "Acknowledged",
        enrolment: "8A1C3D5E-7F90-4B2A-9C4D-6E8F0A1B2C3D",
        "InstalledApplicationList": [
            {"Identifier": "com.microsoft.Office.Outlook", "Name": "Outlook", "ShortVersion": "4.2345.0"},
        ],
    }))  # fmt: skip
    report = tmp_path / "iphone.report.json"
    facts = ["--device-id", "i-2", "--ownership", "personal", "--mdm-enrolled", "--org", "eu-commission"]
    done = CliRunner().invoke(
        cli, ["collect", "--source", "ios-mdm", "--from", str(response), *facts, "-o", str(report)]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(report.read_text())["collector"].get("not_listed") == not_listed
    code, decision = decide(report, "--engine", "embedded")
    unchecked = [(w["rule"], w["app_id"], w["scope"], w["reason"]) for w in decision["warnings"]]
    assert (code, decision["allow"], unchecked) == (
        0,
        True,
        [("eu-commission/tiktok", "com.zhiliaoapp.musically", "personal-enrolled", "not_listed")]
        if not_listed
        else [],
    )
