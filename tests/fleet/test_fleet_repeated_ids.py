"""A device id that comes in more than one report: each report is decided and counted (the counts are
per report, as the contract's `devices` is), and stderr says which reports repeat an id, so that two
snapshots of one phone are not read as two phones without a word (found by an audit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyagent.fleet.summary import MAX_REPEATED_LISTED, FleetSummary
from tests.fleet.runs import AT, EXAMPLES, run

CLEAN = json.loads((EXAMPLES / "eu-commission-corporate-clean.json").read_text())
TIKTOK = json.loads((EXAMPLES / "eu-commission-personal-enrolled-tiktok.json").read_text())


def _as(report: dict[str, object], device_id: str) -> str:
    device = {**report["device"], "id": device_id}  # type: ignore[dict-item]
    return json.dumps({**report, "device": device})


@pytest.mark.parametrize("fmt", ["text", "json", "html"])
def test_a_repeated_device_is_counted_per_report_and_named(tmp_path: Path, fmt: str) -> None:
    inventory = tmp_path / "batch.jsonl"
    inventory.write_text("\n".join([_as(CLEAN, "dup-1"), _as(CLEAN, "other"), _as(TIKTOK, "dup-1")]) + "\n")
    result = run(["fleet", str(inventory), "--at", AT, "--format", fmt, "-o", str(tmp_path / "out")])
    assert result.exit_code == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"pyagent: warning: 1 report repeats a device id given by an earlier one (each decided and counted):"
        f" dup-1 ({inventory}:3)"
    )
    if fmt == "json":
        summary = json.loads((tmp_path / "out").read_text())["summary"]
        assert (summary["devices"], summary["compliant"], summary["non_compliant"]) == (3, 2, 1)


def test_distinct_devices_draw_no_warning(tmp_path: Path) -> None:
    inventory = tmp_path / "batch.jsonl"
    inventory.write_text("\n".join([_as(CLEAN, "a"), _as(CLEAN, "b")]) + "\n")
    result = run(["fleet", str(inventory), "--at", AT])
    assert result.exit_code == 0, result.stderr
    assert (
        result.stderr
        == "2 devices: 2 compliant, 0 non-compliant, 0 invalid\n  eu-commission: 0 of 2 non-compliant\n"
    )


def test_the_warning_names_the_first_few_and_counts_the_rest() -> None:
    summary = FleetSummary()
    for n in range(MAX_REPEATED_LISTED + 3):
        for copy in ("a", "b"):
            summary.add({"device_id": f"d{n}", "source": f"{copy}.jsonl:{n}", "allow": True, "errors": []})
    summary.add({"device_id": None, "source": "bad.jsonl:1", "allow": False, "errors": [{"code": "x"}]})
    summary.add({"device_id": None, "source": "bad.jsonl:2", "allow": False, "errors": [{"code": "x"}]})
    listed = ", ".join(f"d{n} (b.jsonl:{n})" for n in range(MAX_REPEATED_LISTED))
    assert summary.repeated_text() == (
        f"warning: {MAX_REPEATED_LISTED + 3} reports repeat a device id given by an earlier one (each decided"
        f" and counted): {listed} and 3 more"
    )
    assert summary.devices == 2 * (MAX_REPEATED_LISTED + 3) + 2


def test_impact_names_a_repeated_device_as_fleet_does(tmp_path: Path) -> None:
    inventory = tmp_path / "batch.jsonl"
    inventory.write_text("\n".join([_as(CLEAN, "dup-1"), _as(TIKTOK, "dup-1")]) + "\n")
    policies = str(EXAMPLES.parents[1] / "policies")
    result = run(["impact", "--baseline", policies, "--candidate", policies, str(inventory), "--at", AT])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "2 devices: 0 decisions change, 0 flip to deny, 0 flip to allow, 0 with only warnings changed, "
        "0 invalid",
        f"pyagent: warning: 1 report repeats a device id given by an earlier one (each decided and counted):"
        f" dup-1 ({inventory}:2)",
    ]
