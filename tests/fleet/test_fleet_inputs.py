"""`fleet` and `impact` check every input path before deciding anything: exit 2 naming the path."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import pytest

from tests.fleet.runs import AT, EXAMPLES, REPO, run
from tests.helpers.opa_server import free_port
from tests.helpers.unprivileged import as_unprivileged, shared_dir

INVENTORY = "inventory (a JSONL file, a directory, a named pipe or -)"


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
        f"pyagent: error: {os.devnull}: not a regular file, a directory or a named pipe, so not a usable "
        f"{INVENTORY}\n",
    )


def test_fleet_reads_a_named_pipe_as_jsonl_once(two_devices: Path, tmp_path: Path) -> None:
    """A shell's ``<(...)`` is a named pipe: read once, as stdin is, its reports named by the pipe."""
    pipe = tmp_path / "reports.pipe"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: pipe.write_bytes(two_devices.read_bytes()), daemon=True)
    writer.start()
    result = run(["fleet", str(pipe), "--at", AT, "--format", "json", "--jobs", "1"])
    writer.join(timeout=30)
    document = json.loads(result.stdout)
    assert result.exit_code == 1, result.stderr
    assert [(d["device_id"], d["allow"]) for d in document["devices"]] == [
        ("in-bengaluru-personal-2210", False), ("be-brussels-berl-0117", True)
    ]  # fmt: skip
    assert [d["source"] for d in document["devices"]] == [f"{pipe}:1", f"{pipe}:2"]


def test_fleet_stdin_twice_is_a_usage_error(two_devices: Path) -> None:
    result = run(["fleet", "-", str(two_devices), "-", "--at", AT], stdin=two_devices.read_text())
    assert (result.exit_code, result.stderr) == (
        2,
        "pyagent: error: - (stdin) is given twice: it can be read once\n",
    )


def test_fleet_unreadable_inventory(two_devices: Path) -> None:
    with shared_dir() as directory:
        readable, locked = directory / "two.jsonl", directory / "locked.jsonl"
        for path, mode in ((readable, 0o644), (locked, 0)):
            path.write_text(two_devices.read_text())
            path.chmod(mode)
        # the same command once as ourselves first: the modules it imports when run are loaded (the
        # interpreter's own may live where nobody may read, as under /root with pyenv)
        assert run(["fleet", str(readable), "--at", AT, *unreachable_opa()]).exit_code == 3
        with as_unprivileged():
            result = run(["fleet", str(readable), str(locked), "--at", AT, *unreachable_opa()])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: {locked}: cannot read this {INVENTORY}: permission denied\n",
    )


def test_an_inventory_that_cannot_be_opened_after_its_check_is_named(two_devices: Path) -> None:
    """Its rights changed after the check (or an I/O error): a one-line error, not an internal one."""
    from pyagent.errors import InvalidInputError
    from pyagent.fleet.sources import _items

    with shared_dir() as directory:
        locked = directory / "locked.jsonl"
        locked.write_text(two_devices.read_text())
        locked.chmod(0)
        message = f"^{re.escape(f'{locked}: cannot read this {INVENTORY}: Permission denied')}$"
        with as_unprivileged(), pytest.raises(InvalidInputError, match=message):
            next(_items([str(locked)], None, [].append))


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


def test_a_directory_reads_its_reports_as_named_files_are_and_says_what_it_passed_over(
    two_devices: Path, tmp_path: Path
) -> None:
    """A JSONL file named *.json, an upper-case .JSON, one report written over several lines and named
    *.jsonl (as `collect -o` writes it: it was one invalid device per line): read as they would be
    named alone. A symbolic
    link named as a report (to a TikTok phone's) is not followed but counted invalid, so the run
    cannot pass without it; a backup file is passed over, in a note."""
    reports = tmp_path / "reports"
    (reports / "sub").mkdir(parents=True)
    (reports / "devices.json").write_text(two_devices.read_text())  # JSONL under a .json name
    (reports / "sub" / "A.JSON").write_text((EXAMPLES / "eu-commission-corporate-clean.json").read_text())
    link = reports / "link.json"
    link.symlink_to(EXAMPLES / "eu-commission-personal-enrolled-tiktok.json")
    (reports / "report.json.bak").write_text("{}")
    phone = reports / "phone.jsonl"
    phone.write_text(
        json.dumps(json.loads((EXAMPLES / "eu-council-personal-outlook-tiktok.json").read_text()), indent=2)
    )
    result = run(["fleet", str(reports), "--at", AT, "--format", "json", "--jobs", "1"])
    document = json.loads(result.stdout)
    jsonl = reports / "devices.json"
    assert sorted(d["source"] for d in document["devices"]) == [
        f"{jsonl}:1", f"{jsonl}:2", str(link), str(phone), str(reports / "sub" / "A.JSON"),
    ]  # fmt: skip
    [from_phone] = [d for d in document["devices"] if d["source"] == str(phone)]
    assert [v["app_id"] for v in from_phone["violations"]] == ["com.zhiliaoapp.musically"]
    [invalid] = [d for d in document["devices"] if d["errors"]]
    assert invalid["errors"] == [
        {"code": "invalid_report", "message": f"{link}: a symbolic link, not followed: not read as a report"}
    ]
    assert (document["summary"]["invalid"], result.exit_code) == (1, 1)
    assert result.stderr.startswith(
        f"pyagent: note: {reports}: passed over 1 file(s) not named *.json, *.jsonl or *.ndjson, "
        f"e.g. {reports / 'report.json.bak'}\n"
    )


def test_an_empty_inventory_writes_no_document(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    result = run(["fleet", str(empty), "--at", AT, "--format", "json"])
    assert (result.exit_code, result.stdout, result.stderr) == (
        2, "", f"pyagent: error: no reports found in the inventories given ({empty})\n"
    )  # fmt: skip
    folder = tmp_path / "folder"
    folder.mkdir()
    result = run(["fleet", str(empty), str(folder), "-", "--at", AT], stdin="")
    assert (result.exit_code, result.stderr) == (
        2, f"pyagent: error: no reports found in the inventories given ({empty}, {folder}, <stdin>)\n"
    )  # fmt: skip


def test_a_binary_file_is_one_invalid_item_not_one_per_line(tmp_path: Path) -> None:
    """2,000 random bytes were nine invalid devices, one per newline among them."""
    noise = tmp_path / "noise.jsonl"
    noise.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 7 + b"\n" * 8)  # (no NUL in line 1)
    result = run(["fleet", str(noise), "--at", AT, "--format", "json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert (document["summary"]["devices"], document["summary"]["invalid"]) == (1, 1)
    assert document["devices"][0]["errors"] == [
        {"code": "invalid_report",
         "message": f"{noise}: binary, not JSON text (a NUL byte in its first 8 KiB): not a report"}
    ]  # fmt: skip
    nul_line = tmp_path / "nul-line.jsonl"  # a report, then a NUL: that line alone is invalid
    good = json.dumps(json.loads((EXAMPLES / "eu-commission-corporate-clean.json").read_text()))
    nul_line.write_bytes(b"\n" + good.encode() + b"\n\0\n" + good.encode() + b"\n")  # (a blank line first)
    listed = json.loads(run(["fleet", str(nul_line), "--at", AT, "--format", "json"]).stdout)
    assert (listed["summary"]["devices"], listed["summary"]["compliant"], listed["summary"]["invalid"]) == (
        3,
        2,
        1,
    )
    assert [device["errors"] for device in listed["devices"] if device["errors"]] == [
        [
            {
                "code": "invalid_report",
                "message": f"{nul_line}:3: report is binary, not JSON text (NUL byte at offset 0)",
            }
        ]
    ]
    latin1 = tmp_path / "latin1.jsonl"  # one bad line among good ones: those are still decided
    good = json.dumps(json.loads((EXAMPLES / "eu-commission-corporate-clean.json").read_text()))
    latin1.write_bytes(b'{"schema_version": 1, "note": "caf\xe9"}\n' + good.encode() + b"\n")
    summary = json.loads(run(["fleet", str(latin1), "--at", AT, "--format", "json"]).stdout)["summary"]
    assert (summary["devices"], summary["compliant"], summary["invalid"]) == (2, 1, 1)


def test_fleet_text_lists_the_devices_it_could_not_decide_and_o_writes_it(tmp_path: Path) -> None:
    """CONTRACT 3: an invalid report is listed with its errors; -o takes the text report as check's does."""
    inventory = tmp_path / "mixed.jsonl"
    clean = json.dumps(json.loads((EXAMPLES / "eu-commission-corporate-clean.json").read_text()))
    inventory.write_text(f'{clean}\n{{"schema_version": 1, "device": {{"id": "x"}}}}\nnot json\n')
    result = run(["fleet", str(inventory), "--at", AT, "--org", "india"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "3 devices: 1 compliant, 0 non-compliant, 2 invalid"
    assert "  india: 0 of 3 non-compliant, 2 invalid" in lines  # --org wins for invalid reports too
    assert lines[-2].startswith(f"  invalid: {inventory}:2 (x): $.apps: ")
    assert lines[-1] == f"  invalid: {inventory}:3: invalid JSON at line 1, column 1: Expecting value"
    out = tmp_path / "fleet.txt"
    written = run(["fleet", str(inventory), "--at", AT, "--org", "india", "-o", str(out)])
    summary = "3 devices: 1 compliant, 0 non-compliant, 2 invalid\n  india: 0 of 3 non-compliant, 2 invalid\n"
    assert (written.exit_code, written.stderr) == (1, summary)  # the summary on stderr as well, as json's
    assert out.read_text() == result.stderr


def test_an_empty_report_file_in_a_directory_is_an_invalid_device(tmp_path: Path) -> None:
    """A TikTok phone's report truncated to nothing must not let the rest of the fleet pass."""
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "clean.json").write_text((EXAMPLES / "eu-commission-corporate-clean.json").read_text())
    (reports / "phone.json").write_text("")
    result = run(["fleet", str(reports), "--at", AT, "--format", "json", "--jobs", "1"])
    document = json.loads(result.stdout)
    assert (result.exit_code, document["summary"]["devices"], document["summary"]["invalid"]) == (1, 2, 1)
    [empty] = [d for d in document["devices"] if d["errors"]]
    assert empty["errors"] == [
        {"code": "invalid_report", "message": f"{reports / 'phone.json'}: empty: no report in it"}
    ]


def test_a_named_pipe_given_twice_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A pipe read once is empty the second time: given again, by its name or by a link to it, it would
    wait for a writer that never comes. Refused like stdin twice, before anything is opened."""
    pipe, link = tmp_path / "reports.pipe", tmp_path / "same.pipe"
    os.mkfifo(pipe)
    link.symlink_to(pipe)
    for second in (pipe, link):
        result = run(["fleet", str(pipe), str(second), "--at", AT, *unreachable_opa()])
        assert (result.exit_code, result.stderr) == (
            2,
            f"pyagent: error: {second}: the named pipe {pipe} is given again: it can be read once\n",
        )


def test_an_inventory_named_like_a_subcommand_is_given_as_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fleet run` is the subcommand (the help says so); a folder called run is `./run`."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "laptop.json").write_text((EXAMPLES / "eu-commission-corporate-clean.json").read_text())
    monkeypatch.chdir(tmp_path)
    assert run(["fleet", "run", "--at", AT]).exit_code == 2  # the subcommand, without an inventory
    result = run(["fleet", "./run", "--at", AT, "--format", "json", "--jobs", "1"])
    assert result.exit_code == 0, result.stderr
    assert [d["source"] for d in json.loads(result.stdout)["devices"]] == ["run/laptop.json"]


def test_an_inventory_without_a_report_is_said_and_the_others_decided(
    two_devices: Path, tmp_path: Path
) -> None:
    empty_file, empty_dir = tmp_path / "none.jsonl", tmp_path / "none"
    empty_file.write_text("\n")
    empty_dir.mkdir()
    result = run(["fleet", str(empty_file), str(two_devices), str(empty_dir), "--at", AT, "--format", "json"])
    assert result.exit_code == 1, result.stderr
    assert json.loads(result.stdout)["summary"]["devices"] == 2
    assert result.stderr.splitlines()[:3] == [
        f"pyagent: note: {empty_file}: no reports in this inventory",
        f"pyagent: note: {empty_dir}: no reports in this inventory",
        "2 devices: 1 compliant, 1 non-compliant, 0 invalid",
    ]
