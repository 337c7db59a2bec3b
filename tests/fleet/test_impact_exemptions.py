"""``impact`` when only what waives a breach changes: the decision stays (exempted before and after),
so no decision changes (exit 0), but the device is listed under ``exemption_changes`` and counted as
``exemptions_changed``: a pull request that swaps a waiver or extends its ``until`` is no silent
"nothing changes" to its reviewer (an audit found exactly that)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.fleet.runs import EXAMPLES, REPO, run
from tests.helpers.domain import CONTRACT_EXEMPTION

PHONE = EXAMPLES / "eu-commission-personal-enrolled-tiktok.json"  # fr-brussels-0042, TikTok, enrolled
AT = "2023-03-20T00:00:00Z"
PRESS_OFFICE = CONTRACT_EXEMPTION


def _policy_with(tmp_path: Path, name: str, exemptions: dict[str, Any]) -> Path:
    root = tmp_path / name
    shutil.copytree(REPO / "policies", root)
    (root / "data" / "pyagent" / "exemptions" / "data.yaml").write_text(yaml.safe_dump(exemptions))
    return root


def _impact(baseline: Path, candidate: Path, *extra: str) -> Any:
    return run(["impact", "--baseline", str(baseline), "--candidate", str(candidate), str(PHONE), "--at", AT,
                "--jobs", "1", *extra])  # fmt: skip


def test_a_waiver_extended_or_swapped_is_listed_though_no_decision_changes(tmp_path: Path) -> None:
    baseline = _policy_with(tmp_path, "baseline", {"EX-1": PRESS_OFFICE})
    extended = _policy_with(tmp_path, "extended", {"EX-1": {**PRESS_OFFICE, "until": "2023-09-30T00:00:00Z"}})
    swapped = _policy_with(tmp_path, "swapped", {"EX-1b": PRESS_OFFICE})

    document = json.loads(_impact(baseline, extended, "--format", "json").stdout)
    assert (document["summary"]["changed"], document["summary"]["exemptions_changed"]) == (0, 1)
    assert document["changes"] == [] and document["warning_changes"] == []
    assert document["exemption_changes"] == [
        {
            "device_id": "fr-brussels-0042", "organization": "eu-commission",
            "source": str(PHONE), "exempted_added": [], "exempted_removed": [],
            "exempted_changed": [{
                "rule": "eu-commission/tiktok", "app_id": "com.zhiliaoapp.musically", "exemption": "EX-1",
                "changed": {"until": ["2023-06-30T00:00:00Z", "2023-09-30T00:00:00Z"]},
            }],
        }
    ]  # fmt: skip

    text = _impact(baseline, swapped)
    assert (text.exit_code, text.stderr.splitlines()[-2:]) == (
        0,
        [
            "1 device: 0 decisions change, 0 flip to deny, 0 flip to allow, 0 with only warnings changed, "
            "1 with exemptions changed, 0 invalid",
            "  fr-brussels-0042 (eu-commission): exemptions changed; exempted +eu-commission/tiktok "
            "com.zhiliaoapp.musically (EX-1b); -eu-commission/tiktok com.zhiliaoapp.musically (EX-1)",
        ],
    )


def test_the_same_waiver_is_no_change(tmp_path: Path) -> None:
    baseline = _policy_with(tmp_path, "baseline", {"EX-1": PRESS_OFFICE})
    document = json.loads(_impact(baseline, baseline, "--format", "json").stdout)
    assert (document["summary"]["exemptions_changed"], document["exemption_changes"]) == (0, [])


def test_a_device_whose_warnings_and_waivers_both_change_is_listed_under_both(tmp_path: Path) -> None:
    """The candidate extends the waiver and adds a rule that is not in force yet: the decision stays,
    the device is in ``exemption_changes`` and in ``warning_changes``, counted once in each."""
    baseline = _policy_with(tmp_path, "baseline", {"EX-1": PRESS_OFFICE})
    candidate = _policy_with(
        tmp_path, "candidate", {"EX-1": {**PRESS_OFFICE, "until": "2023-09-30T00:00:00Z"}}
    )
    organizations = candidate / "data" / "pyagent" / "organizations" / "data.yaml"
    data = yaml.safe_load(organizations.read_text())
    data["eu-commission"]["rules"]["tiktok-2024"] = {
        "ban": "tiktok", "scopes": ["personal-enrolled"], "effective_from": "2024-01-01T00:00:00Z",
    }  # fmt: skip
    organizations.write_text(yaml.safe_dump(data))
    document = json.loads(_impact(baseline, candidate, "--format", "json").stdout)
    summary = document["summary"]
    assert (summary["changed"], summary["warnings_changed"], summary["exemptions_changed"]) == (0, 1, 1)
    assert [c["device_id"] for c in document["warning_changes"]] == ["fr-brussels-0042"]
    assert [c["warnings_added"] for c in document["warning_changes"]] == [
        [{"rule": "eu-commission/tiktok-2024", "app_id": "com.zhiliaoapp.musically"}]
    ]
    assert [c["exempted_changed"][0]["changed"] for c in document["exemption_changes"]] == [
        {"until": ["2023-06-30T00:00:00Z", "2023-09-30T00:00:00Z"]}
    ]
