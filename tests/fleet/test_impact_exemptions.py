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

PHONE = EXAMPLES / "eu-commission-personal-enrolled-tiktok.json"  # fr-brussels-0042, TikTok, enrolled
AT = "2023-03-20T00:00:00Z"
PRESS_OFFICE = {
    "device_id": "fr-brussels-0042",
    "organization": "eu-commission",
    "ban": "tiktok",
    "until": "2023-06-30T00:00:00Z",
    "reason": "official communications account",
    "approved_by": "DIGIT.S",
}


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
            "1 with only exemptions changed, 0 invalid",
            "  fr-brussels-0042 (eu-commission): exemptions only; exempted +eu-commission/tiktok "
            "com.zhiliaoapp.musically (EX-1b); -eu-commission/tiktok com.zhiliaoapp.musically (EX-1)",
        ],
    )


def test_the_same_waiver_is_no_change(tmp_path: Path) -> None:
    baseline = _policy_with(tmp_path, "baseline", {"EX-1": PRESS_OFFICE})
    document = json.loads(_impact(baseline, baseline, "--format", "json").stdout)
    assert (document["summary"]["exemptions_changed"], document["exemption_changes"]) == (0, [])
