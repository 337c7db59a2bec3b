"""What the collectors produce fits the device report schema (schemas/device-report.schema.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pyagent.collectors import Inventory, get_collector
from tests.collectors.conftest import FIXTURES

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "device-report.schema.json"

FILE_INPUTS = [
    ("android-pm", "android-pm/personal-outlook-tiktok-f-i-versioncode.txt"),
    ("android-pm", "android-pm/personal-plain.txt"),
    ("android-pm", "android-pm/android14-all-users-U-versioncode.txt"),
    ("android-pm", "android-pm/android6-adb-pty-crlf-f.txt"),
    ("osquery", "osquery/macos-apps.json"),
    ("osquery", "osquery/windows-programs-osquery-5.16.json"),
    ("osquery", "osquery/windows-programs-osquery-5.17-msix.json"),
    ("osquery", "osquery/debian12-deb_packages.json"),
    ("osquery", "osquery/fedora40-rpm_packages.json"),
    ("intune", "intune/windows-laptop-detectedapps.json"),
    ("intune", "intune/android-work-profile-detectedapps.json"),
    ("intune", "intune/android-fully-managed-tiktok-detectedapps.json"),
    ("intune", "intune/ios-detectedapps-value-array-only.json"),
    ("ios-mdm", "ios-mdm/iphone-installed-application-list-response.plist"),
]


def report_for(inventory: Inventory) -> dict[str, Any]:
    """A minimal report around an inventory, the way a report builder would make it."""
    device: dict[str, Any] = {
        "id": "test-device",
        "platform": inventory.platform,
        "ownership": "personal",
        "mdm": {"enrolled": True},
    }
    if inventory.os_version is not None:
        device["os_version"] = inventory.os_version
    if inventory.work_profile is not None:
        device["work_profile"] = inventory.work_profile
    if inventory.facts:
        device["extra"] = inventory.facts
    return {
        "schema_version": 1,
        "collected_at": "2023-03-16T09:30:00Z",
        "device": device,
        "apps": inventory.apps_json(),
        "collector": inventory.collector_json(),
    }


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    assert SCHEMA_PATH.is_file(), SCHEMA_PATH  # the schema ships with the code: never skip its check
    return Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def _assert_valid(validator: Draft202012Validator, report: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(report)]
    assert errors == []
    json.dumps(report)


@pytest.mark.parametrize(("name", "relative"), FILE_INPUTS)
def test_file_inputs_make_valid_reports(validator: Draft202012Validator, name: str, relative: str) -> None:
    inventory = get_collector(name, from_file=FIXTURES / relative).collect()
    _assert_valid(validator, report_for(inventory))


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg-query")
def test_this_machine_makes_a_valid_report(validator: Draft202012Validator) -> None:
    _assert_valid(validator, report_for(get_collector("linux").collect()))
