"""Reports printed one after another, each over several lines (``jq . a.json b.json``, or reports
``collect`` wrote, concatenated): read document by document, each named by the line it starts on,
where each line was read as a broken JSONL report (two reports counted as 34 invalid devices)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyagent.fleet.sources import iter_items
from tests.fleet.runs import AT, EXAMPLES, run

COMMISSION = EXAMPLES / "eu-commission-personal-enrolled-tiktok.json"
COUNCIL = EXAMPLES / "eu-council-personal-outlook-tiktok.json"


def _pretty(path: Path) -> str:
    return json.dumps(json.loads(path.read_text()), indent=2) + "\n"


def _items(path: Path) -> list[tuple[str, Any, str | None]]:
    return [(i.source, json.loads(i.data) if i.data else None, i.error) for i in iter_items([str(path)])]


def test_reports_printed_one_after_another_are_read_one_by_one(tmp_path: Path) -> None:
    first, second = _pretty(COMMISSION), _pretty(COUNCIL)
    stream = tmp_path / "reports.json"
    stream.write_bytes(b"\xef\xbb\xbf" + (first + "\n" + second).encode())
    second_line = first.count("\n") + 2
    assert _items(stream) == [
        (f"{stream}:1", json.loads(first), None),
        (f"{stream}:{second_line}", json.loads(second), None),
    ]
    fleet = run(["fleet", str(stream), "--at", AT, "--format", "json"])
    summary = json.loads(fleet.stdout)["summary"]
    assert (fleet.exit_code, summary["devices"], summary["non_compliant"], summary["invalid"]) == (1, 2, 2, 0)


def test_what_cannot_be_read_on_is_one_invalid_item_that_says_the_rest_is_not_read(tmp_path: Path) -> None:
    first = _pretty(COMMISSION)
    stream = tmp_path / "reports.json"
    stream.write_text(first + '{\n  "schema_version": 1,\n  "device": {\n}\n')  # cut short
    start = first.count("\n") + 1
    assert _items(stream) == [
        (f"{stream}:1", json.loads(first), None),
        (
            f"{stream}:{start}",
            None,
            f"{stream}:{start}: invalid JSON at line {start + 4}, column 1: "
            f"Expecting ',' delimiter; the rest of {stream} is not read",
        ),
    ]  # fmt: skip  (the document ends at the end of the file, where a ',' was due)


def test_large_reports_are_read_whole_however_many_lines_they_take(tmp_path: Path) -> None:
    """Each over the 64 KiB first read: what is held doubles until the document is complete."""
    report = json.loads(COMMISSION.read_text())
    report["apps"] = [
        {"id": f"org.example.app{n}", "name": f"App {n}", "version": "1.0"} for n in range(3000)
    ]
    text = json.dumps(report, indent=2) + "\n"
    stream = tmp_path / "reports.json"
    stream.write_text(text * 3)
    lines = text.count("\n")
    assert [(source, data == report) for source, data, _ in _items(stream)] == [
        (f"{stream}:{1 + n * lines}", True) for n in range(3)
    ]


def test_jsonl_and_one_pretty_report_are_read_as_before(tmp_path: Path) -> None:
    compact = json.dumps(json.loads(COMMISSION.read_text()))
    jsonl = tmp_path / "devices.jsonl"
    jsonl.write_text(f"{compact}\n{{broken\n{compact}\n")
    line = f"{compact}\n".encode()
    # (line 2 is refused when it is decided, as one invalid device)
    assert [(item.source, item.data) for item in iter_items([str(jsonl)])] == [
        (f"{jsonl}:1", line), (f"{jsonl}:2", b"{broken\n"), (f"{jsonl}:3", line)
    ]  # fmt: skip
    one = tmp_path / "one.json"
    one.write_text(_pretty(COMMISSION))
    assert _items(one) == [(str(one), json.loads(COMMISSION.read_text()), None)]
