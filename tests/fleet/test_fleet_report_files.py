"""`fleet` given a report file as written by `collect` (one JSON document over many lines), on the
command line or on stdin: one device, not one broken report per line. JSONL stays JSONL, and a JSONL
file whose first line is broken still has its other lines decided."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fleet.runs import AT, EXAMPLES, run

CLEAN = EXAMPLES / "eu-commission-corporate-clean.json"
TIKTOK = EXAMPLES / "eu-commission-personal-enrolled-tiktok.json"


def devices(stdout: str) -> list[tuple[str, bool | None]]:
    return [(d["device_id"], d["allow"]) for d in json.loads(stdout)["devices"]]


def test_pretty_printed_report_files_are_one_device_each() -> None:
    assert CLEAN.read_text().count("\n") > 5  # as collect writes it: indented, over many lines
    result = run(["fleet", str(CLEAN), str(TIKTOK), "--at", AT, "--format", "json", "--jobs", "1"])
    summary = json.loads(result.stdout)["summary"]
    assert (result.exit_code, summary["devices"], summary["invalid"]) == (1, 2, 0)
    assert devices(result.stdout) == [
        (json.loads(CLEAN.read_text())["device"]["id"], True),
        (json.loads(TIKTOK.read_text())["device"]["id"], False),
    ]


def test_pretty_printed_report_on_stdin_is_one_device() -> None:
    result = run(["fleet", "-", "--at", AT, "--format", "json"], stdin=CLEAN.read_text())
    device_id = json.loads(CLEAN.read_text())["device"]["id"]
    assert (result.exit_code, devices(result.stdout)) == (0, [(device_id, True)])


def test_a_broken_pretty_printed_report_is_still_named_line_by_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(CLEAN.read_text().rstrip().rstrip("}"))  # cut short: JSON as a whole neither
    result = run(["fleet", str(broken), "--at", AT, "--format", "json"])
    listed = json.loads(result.stdout)["devices"]
    assert result.exit_code == 1
    assert listed[0]["errors"] == [{"code": "invalid_report", "message": (
        f"{broken}:1: invalid JSON at line 2, column 1: Expecting property name enclosed in double quotes "
        "(the document ends too early: truncated?)"
    )}]  # fmt: skip
    lines = [line for line in broken.read_text().splitlines() if line.strip()]
    assert json.loads(result.stdout)["summary"]["invalid"] == len(listed) == len(lines) > 1  # one per line


def test_jsonl_with_a_broken_first_line_decides_the_others(tmp_path: Path) -> None:
    inventory = tmp_path / "fleet.jsonl"
    inventory.write_text("not json\n" + json.dumps(json.loads(TIKTOK.read_text())) + "\n")
    result = run(["fleet", str(inventory), "--at", AT, "--format", "json"])
    listed = json.loads(result.stdout)["devices"]
    assert (result.exit_code, len(listed), listed[1]["allow"]) == (1, 2, False)
    assert listed[0]["errors"][0]["message"].startswith(f"{inventory}:1: invalid JSON")
