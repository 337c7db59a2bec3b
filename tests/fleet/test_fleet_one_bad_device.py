"""One device the run cannot decide, or cannot read, is that device's error: the others are decided
and the exit code says so (CONTRACT section 3: 3 only when no decision could be made)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.fleet.runs import AT, EXAMPLES, REPO, run
from tests.helpers.unprivileged import as_unprivileged, shared_dir

CLEAN = EXAMPLES / "eu-commission-corporate-clean.json"
TIKTOK = EXAMPLES / "eu-commission-personal-enrolled-tiktok.json"


def _as(path: Path, device_id: str) -> str:
    report = json.loads(path.read_text())
    report["device"]["id"] = device_id
    return json.dumps(report)


def test_a_policy_that_aborts_for_one_device_leaves_the_others_decided(tmp_path: Path) -> None:
    """A rule that conflicts for device "trigger" alone (OPA's eval_conflict_error; the embedded
    engine aborts): that device is undecided, the two others decided."""
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    decision = policies / "rego" / "pyagent" / "decision" / "decision.rego"
    decision.write_text(
        decision.read_text() + '\nerrors := ["conflict"] if input.report.device.id == "trigger"\n'
    )
    bundle = tmp_path / "conflict.tar.gz"
    built = run(["policy", "bundle", str(policies / "rego"), str(policies / "data"), "-o", str(bundle)])
    assert built.exit_code == 0, built.stderr
    inventory = tmp_path / "fleet.jsonl"
    inventory.write_text("\n".join([_as(CLEAN, "ok-1"), _as(CLEAN, "trigger"), _as(TIKTOK, "bad-1")]) + "\n")
    result = run(
        ["fleet", str(inventory), "--at", AT, "--format", "json", "--bundle", str(bundle), "--jobs", "1"]
    )
    assert result.exit_code == 1, result.stderr
    document = json.loads(result.stdout)
    summary = document["summary"]
    assert {k: summary[k] for k in ("devices", "compliant", "non_compliant", "invalid", "undecided")} == {
        "devices": 3, "compliant": 1, "non_compliant": 1, "invalid": 0, "undecided": 1,
    }  # fmt: skip
    [undecided] = [d for d in document["devices"] if d["device_id"] == "trigger"]
    assert undecided["allow"] is False and [e["code"] for e in undecided["errors"]] == ["no_decision"]


def test_an_empty_report_file_named_on_the_command_line_is_invalid(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("\n")
    result = run(["fleet", str(CLEAN), str(empty), "--at", AT, "--format", "json", "--jobs", "1"])
    assert result.exit_code == 1, result.stderr
    document = json.loads(result.stdout)
    assert (document["summary"]["compliant"], document["summary"]["invalid"]) == (1, 1)
    assert document["devices"][1]["errors"] == [
        {"code": "invalid_report", "message": f"{empty}: empty: no report in it"}
    ]


def test_a_subdirectory_that_cannot_be_read_is_an_invalid_item(
    tmp_path: Path, policy_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its reports (a banned app, here) are not read: the run cannot pass without them."""
    with shared_dir() as directory:
        bundle = directory / "bundle.tar.gz"  # where nobody may read it
        shutil.copy(policy_bundle, bundle)
        bundle.chmod(0o644)
        monkeypatch.setenv("PYAGENT_BUNDLE", str(bundle))
        reports, locked = directory / "reports", directory / "reports" / "locked"
        locked.mkdir(parents=True)
        shutil.copy(CLEAN, reports / "a.json")
        shutil.copy(TIKTOK, locked / "b.json")
        for path in (reports, reports / "a.json", locked / "b.json"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        locked.chmod(0)
        # the same command once as ourselves first: the modules it imports when run are loaded
        assert run(["fleet", str(CLEAN), "--at", AT, "--jobs", "1"]).exit_code == 0
        with as_unprivileged():
            result = run(["fleet", str(reports), "--at", AT, "--format", "json", "--jobs", "1"])
        locked.chmod(0o755)
    assert result.exit_code == 1, result.stderr
    document = json.loads(result.stdout)
    assert (document["summary"]["compliant"], document["summary"]["invalid"]) == (1, 1)
    [unread] = [d for d in document["devices"] if d["errors"]]
    assert unread["errors"] == [{"code": "invalid_report", "message": (
        f"{locked}: cannot read this directory: Permission denied: its reports are not read"
    )}]  # fmt: skip


def _nested_too_deeply(device_id: str) -> str:
    """A report whose ``extra`` nests 5,000 arrays deep: past what Python's JSON reader follows."""
    report = json.loads(CLEAN.read_text())
    report["device"]["id"] = device_id
    return json.dumps(report)[:-1] + ', "extra": {"x": ' + "[" * 5000 + "]" * 5000 + "}}"


@pytest.mark.parametrize("given_as", ["file", "first line", "directory", "stdin"])
def test_a_report_nested_too_deeply_is_invalid_and_the_others_are_decided(
    tmp_path: Path, given_as: str
) -> None:
    """Wherever it comes first (a file, the first line of a JSONL file, a directory's file, stdin), a
    report nested past the JSON reader's limit is that device's error, not the end of the run."""
    deep, clean = _nested_too_deeply("deep-1"), _as(CLEAN, "ok-1")
    stdin = None
    if given_as == "file":
        (tmp_path / "deep.json").write_text(deep)
        (tmp_path / "ok.json").write_text(clean)
        args = [str(tmp_path / "deep.json"), str(tmp_path / "ok.json")]
        name = f"{tmp_path / 'deep.json'}:1"  # a report on one line is read as JSON lines are
    elif given_as == "first line":
        (tmp_path / "fleet.jsonl").write_text(f"{deep}\n{clean}\n")
        args, name = [str(tmp_path / "fleet.jsonl")], f"{tmp_path / 'fleet.jsonl'}:1"
    elif given_as == "directory":
        (tmp_path / "reports").mkdir()
        (tmp_path / "reports" / "a.json").write_text(deep)
        (tmp_path / "reports" / "b.json").write_text(clean)
        args, name = [str(tmp_path / "reports")], f"{tmp_path / 'reports' / 'a.json'}:1"
    else:
        args, name, stdin = ["-"], "<stdin>:1", f"{deep}\n{clean}\n"
    result = run(["fleet", *args, "--at", AT, "--format", "json", "--jobs", "1"], stdin=stdin)
    assert result.exit_code == 1, result.stderr
    document = json.loads(result.stdout)
    summary = document["summary"]
    assert (summary["devices"], summary["compliant"], summary["invalid"]) == (2, 1, 1)
    assert [d["errors"] for d in document["devices"]] == [
        [{"code": "invalid_report", "message": f"{name}: invalid JSON: nested too deeply"}],
        [],
    ]
