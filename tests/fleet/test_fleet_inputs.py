"""`fleet` and `impact` check every input path before deciding anything: exit 2 naming the path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fleet.test_fleet_cli import AT, EXAMPLES, REPO, run
from tests.helpers.opa_server import free_port

INVENTORY = "inventory (a JSONL file, a directory or -)"


@pytest.fixture
def two_devices(tmp_path: Path) -> Path:
    path = tmp_path / "two.jsonl"
    reports = [
        json.loads((EXAMPLES / f"{name}.json").read_text())
        for name in ("india-personal-lite", "eu-commission-corporate-clean")
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in reports))
    return path


def unreachable_opa() -> list[str]:
    """An engine that cannot answer: had anything been decided, the exit would be 3, not 2."""
    return ["--engine", "opa", "--opa-url", f"http://127.0.0.1:{free_port()}"]


def test_fleet_missing_second_inventory_fails_before_any_decision(two_devices: Path, tmp_path: Path) -> None:
    missing = tmp_path / "reports" / "week-2.jsonl"
    result = run(["fleet", str(two_devices), str(missing), "--at", AT, "--jobs", "1", *unreachable_opa()])
    assert (result.exit_code, result.stderr) == (2, f"pyagent: error: {missing}: no such {INVENTORY}\n")
    assert result.stdout == ""


def test_fleet_inventory_that_is_not_a_file(two_devices: Path) -> None:
    result = run(["fleet", str(two_devices), os.devnull, "--at", AT, *unreachable_opa()])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: {os.devnull}: not a regular file or a directory, so not a usable {INVENTORY}\n",
    )


def test_fleet_stdin_twice_is_a_usage_error(two_devices: Path) -> None:
    result = run(["fleet", "-", str(two_devices), "-", "--at", AT], stdin=two_devices.read_text())
    assert (result.exit_code, result.stderr) == (
        2,
        "pyagent: error: - (stdin) is given twice: it can be read once\n",
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file: permissions cannot be tested")
def test_fleet_unreadable_inventory(two_devices: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked.jsonl"
    locked.write_text(two_devices.read_text())
    locked.chmod(0)
    result = run(["fleet", str(two_devices), str(locked), "--at", AT, *unreachable_opa()])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: {locked}: cannot read this {INVENTORY}: permission denied\n",
    )


def test_impact_missing_inventory_fails_before_compiling(two_devices: Path, tmp_path: Path) -> None:
    """The candidate is empty and would not compile: the inventory, checked before compiling, is named."""
    missing, empty_policy = tmp_path / "nope.jsonl", tmp_path / "empty-policy"
    empty_policy.mkdir()
    result = run(["impact", "--baseline", str(REPO / "policies"), "--candidate", str(empty_policy),
                  str(two_devices), str(missing), "--at", AT])  # fmt: skip
    assert (result.exit_code, result.stderr) == (2, f"pyagent: error: {missing}: no such {INVENTORY}\n")


@pytest.mark.parametrize("which", ["--baseline", "--candidate"])
def test_impact_missing_policy_directory(two_devices: Path, tmp_path: Path, which: str) -> None:
    given = {"--baseline": str(REPO / "policies"), "--candidate": str(REPO / "policies")}
    given[which] = str(tmp_path / "proposed")
    result = run(["impact", *(x for pair in given.items() for x in pair), str(two_devices), "--at", AT])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: {tmp_path / 'proposed'}: no such policy directory ({which})\n",
    )
