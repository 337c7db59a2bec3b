"""An author's edit of the policy data changes no library test: the library tests decide with their
own frozen copy of the data (``policies/rego/pyagent/lib/testdata``); only the shipped-data tests
(``pyagent/decision``) assert what the shipped organisations decide. Each edit below, run with the
real ``opa test``, fails shipped-data tests (so it is an edit that matters) and no other. An audit
found 38 to 53 library tests failing on such edits (a rule set to warn, an organisation's rules
removed), which made every such pull request red."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.opa_server import POLICY_DIRS

Data = dict[str, Any]


def _every_rule_warns(data: Data) -> None:
    for organization in data["organizations"].values():
        for rule in (organization.get("rules") or {}).values():
            rule["enforcement"] = "warn"


def _no_organization_has_rules(data: Data) -> None:
    for organization in data["organizations"].values():
        organization["rules"] = {}


def _tiktok_loses_windows_and_douyin(data: Data) -> None:
    apps = data["bans"]["tiktok"]["apps"]
    del apps["windows"]
    apps["android"] = [i for i in apps["android"] if i != "com.ss.android.ugc.aweme"]


def _one_work_app_per_platform(data: Data) -> None:
    data["work_apps"] = {platform: ids[:1] for platform, ids in data["work_apps"].items()}


def _india_removed(data: Data) -> None:
    del data["organizations"]["india"]


def _the_commission_and_its_heir_removed(data: Data) -> None:
    del data["organizations"]["eu-commission"], data["organizations"]["eeas"]


@pytest.mark.parametrize(
    "edit",
    [
        _every_rule_warns,
        _no_organization_has_rules,
        _tiktok_loses_windows_and_douyin,
        _one_work_app_per_platform,
        _india_removed,
        _the_commission_and_its_heir_removed,
    ],
)
def test_an_edit_of_the_data_fails_shipped_data_tests_only(
    opa_bin: str, tmp_path: Path, edit: Callable[[Data], None]
) -> None:
    edited = tmp_path / "data"
    shutil.copytree(POLICY_DIRS[1], edited)
    parts = ("bans", "organizations", "work_apps", "exemptions")
    data = {part: yaml.safe_load((edited / "pyagent" / part / "data.yaml").read_text()) for part in parts}
    edit(data)
    for part in parts:
        (edited / "pyagent" / part / "data.yaml").write_text(yaml.safe_dump(data[part]))
    done = subprocess.run(
        [opa_bin, "test", str(POLICY_DIRS[0]), str(edited), "--format", "json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    failed = {(t["package"], t["name"]) for t in json.loads(done.stdout) if t.get("fail") or t.get("error")}
    assert {package for package, _ in failed} == {"data.pyagent.decision_test"}, sorted(failed)
