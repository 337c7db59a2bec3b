"""Where ``fleet`` and ``impact`` write (``-o`` or standard output) cannot cost a report or pass for a
crash: an ``-o`` inside an inventory directory is refused before anything is opened, and a write that
fails (a full disk) is the user's error naming where, exit 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fleet.runs import AT, EXAMPLES, REPO, run

CLEAN = EXAMPLES / "eu-commission-corporate-clean.json"
TIKTOK = EXAMPLES / "eu-commission-personal-enrolled-tiktok.json"
POLICIES = str(REPO / "policies")


def _inventory(directory: Path) -> Path:
    directory.mkdir()
    shutil.copy(CLEAN, directory / "clean.json")
    shutil.copy(TIKTOK, directory / "tiktok.json")
    return directory


@pytest.mark.parametrize("command", ["fleet", "impact"])
@pytest.mark.parametrize("name", ["tiktok.json", "new.json", "sub/../tiktok.json"])
def test_an_output_inside_an_inventory_directory_is_refused(tmp_path: Path, command: str, name: str) -> None:
    """``-o inv/tiktok.json`` had emptied that report before it was read: its device came out invalid,
    and the report was gone. A new file there would be read back as a report at the next run."""
    inventory = _inventory(tmp_path / "inv")
    (inventory / "sub").mkdir()
    before = (inventory / "tiktok.json").read_bytes()
    output = str(inventory / name)
    more = ["--baseline", POLICIES, "--candidate", POLICIES] if command == "impact" else []
    result = run([command, *more, str(inventory), "--at", AT, "--format", "json", "-o", output])
    assert result.exit_code == 2
    assert result.stderr == (
        f"pyagent: error: -o {output} is inside the inventory directory {inventory}: it would be read as "
        "a report, or overwrite one; write it elsewhere\n"
    )
    assert (inventory / "tiktok.json").read_bytes() == before
    assert sorted(p.name for p in inventory.iterdir()) == ["clean.json", "sub", "tiktok.json"]


def test_an_output_beside_the_inventory_is_written(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inv")
    result = run(["fleet", str(inventory), "--at", AT, "--format", "json", "-o", str(tmp_path / "inv.json")])
    assert result.exit_code == 1, result.stderr  # the TikTok phone
    assert (tmp_path / "inv.json").read_text().startswith('{\n  "summary"')


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["fleet", str(CLEAN), "--format", "json", "-o", "/dev/full"], "-o /dev/full"),
        (["fleet", str(CLEAN), "--format", "json"], "standard output"),
        (["check", str(CLEAN), "--format", "json"], "standard output"),
        (["impact", "--baseline", POLICIES, "--candidate", POLICIES, str(TIKTOK), "--format", "json",
          "-o", "/dev/full"], "-o /dev/full"),
    ],
)  # fmt: skip
def test_a_full_disk_is_said_where_with_exit_2(args: list[str], where: str) -> None:
    """It was an internal error (exit 3); standard output here is /dev/full, as a redirection makes it."""
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "pyagent", *args, "--at", AT], stdout=full, stderr=subprocess.PIPE,
            text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"pyagent: error: {where}: cannot write: No space left on device\n" in done.stderr
    assert "internal error" not in done.stderr
