"""``-o FILE`` after an error holds no earlier run's results (a passing JUnit file left by the last
run would read as this run's), and ``-o`` naming an input is refused before anything is written."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import AT, EXAMPLES, REPO, run

CLEAN = EXAMPLES / "eu-commission-corporate-clean.json"
POLICIES = REPO / "policies"


def test_a_refused_or_undecided_check_leaves_no_earlier_results(tmp_path: Path, policy_bundle: Path) -> None:
    results = tmp_path / "results.xml"
    first = run(["check", str(CLEAN), "--at", AT, "--format", "junit", "-o", str(results)])
    assert first.exit_code == 0 and 'failures="0"' in results.read_text()
    no_org = tmp_path / "no-org.json"
    report = json.loads(CLEAN.read_text())
    del report["device"]["organization"]
    no_org.write_text(json.dumps(report))
    refused = run(["check", str(no_org), "--at", AT, "--format", "junit", "-o", str(results)])
    assert refused.exit_code == 2 and 'failures="0"' not in results.read_text()  # the refusal, said in JUnit
    run(["check", str(CLEAN), "--at", AT, "--format", "json", "-o", str(results)])
    assert json.loads(results.read_text())["allow"] is True
    unreachable = ["--engine", "opa", "--opa-url", "http://127.0.0.1:9", "--opa-timeout", "0.5"]
    undecided = run(["check", str(CLEAN), "--at", AT, "--format", "json", "-o", str(results), *unreachable])
    assert (undecided.exit_code, results.read_text()) == (3, "")


def test_an_output_that_is_an_input_is_refused(tmp_path: Path, policy_bundle: Path) -> None:
    report = tmp_path / "report.json"
    shutil.copy(CLEAN, report)
    result = run(["check", str(report), "--at", AT, "--format", "json", "-o", str(report)])
    assert (result.exit_code, result.stderr) == (
        2, f"pyagent: error: -o {report} is also an input ({report}): writing would overwrite it\n"
    )  # fmt: skip
    assert report.read_bytes() == CLEAN.read_bytes()
    inventory = tmp_path / "fleet.jsonl"
    inventory.write_text(json.dumps(json.loads(CLEAN.read_text())) + "\n")
    kept = inventory.read_bytes()
    result = run(["fleet", str(inventory), "--at", AT, "--format", "json", "-o", str(inventory)])
    assert (result.exit_code, result.stderr) == (
        2, f"pyagent: error: -o {inventory} is also an input ({inventory}): writing would overwrite it\n"
    )  # fmt: skip
    assert inventory.read_bytes() == kept


def test_an_impact_that_fails_leaves_no_earlier_document(tmp_path: Path) -> None:
    document = tmp_path / "impact.json"
    document.write_text('{"summary": {"changed": 0}}\n')  # an earlier run's
    broken = tmp_path / "broken"
    (broken / "rego").mkdir(parents=True)
    (broken / "rego" / "x.rego").write_text("package pyagent.decision\n\nthis is not rego\n")
    result = run(["impact", "--baseline", str(REPO / "policies"), "--candidate", str(broken), str(CLEAN),
                  "--at", AT, "--format", "json", "-o", str(document)])  # fmt: skip
    assert (result.exit_code, document.read_text()) == (2, "")


#: One report for each command that decides: its arguments before the options every test adds.
DECIDING = {
    "check": ["check", str(CLEAN)],
    "fleet": ["fleet", str(CLEAN)],
    "impact": [
        "impact",
        "--baseline",
        str(POLICIES),
        "--candidate",
        str(POLICIES),
        str(CLEAN),
    ],
}
EARLIER = '{"summary": {"devices": 1, "compliant": 1}}\n'


@pytest.mark.parametrize("command", sorted(DECIDING))
@pytest.mark.parametrize(
    "bad", [["--org", "acme"], ["--at", "yesterday"]], ids=["unknown organisation", "bad time"]
)
def test_every_deciding_command_that_fails_before_deciding_empties_an_earlier_file(
    tmp_path: Path, policy_bundle: Path, command: str, bad: list[str]
) -> None:
    """`fleet -o` kept an earlier run's file when it failed before writing (an unknown --org), where
    `impact -o` emptied it and `check -o` emptied it only for some errors: one rule for all three."""
    results = tmp_path / "results.json"
    results.write_text(EARLIER)
    options = ["--at", AT, *bad] if bad[0] != "--at" else bad
    result = run([*DECIDING[command], *options, "--format", "json", "-o", str(results)])
    assert (result.exit_code, results.read_text()) == (2, "")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results.json"]  # no temporary file


def test_results_that_say_no_device_could_be_decided_are_written_with_their_summary(
    tmp_path: Path, policy_bundle: Path
) -> None:
    """Exit 3 after the results are written: they stay (they were written, then emptied), and a text
    report written to -o has its summary on stderr too (nothing was said there)."""
    unreachable = [
        "--engine",
        "opa",
        "--opa-url",
        "http://127.0.0.1:9",
        "--opa-timeout",
        "0.5",
        "--opa-retries",
        "0",
    ]
    head = (
        "1 devices: 0 compliant, 0 non-compliant, 0 invalid, 1 undecided\n"
        "  eu-commission: 0 of 1 non-compliant\n"
    )
    document, text = tmp_path / "results.json", tmp_path / "results.txt"
    for output in (document, text):
        output.write_text(EARLIER)
        fmt = "json" if output is document else "text"
        result = run(["fleet", str(CLEAN), "--at", AT, "--format", fmt, "-o", str(output), *unreachable])
        assert (result.exit_code, result.stderr) == (3, head)
    summary = json.loads(document.read_text())["summary"]
    assert (summary["devices"], summary["undecided"]) == (1, 1)
    assert text.read_text().startswith(head + f"  undecided: {CLEAN} (be-brussels-berl-0117): OPA at ")


def test_an_impact_whose_policy_directory_is_missing_empties_an_earlier_file(tmp_path: Path) -> None:
    """Its directories were checked before the rule that empties an earlier file applied."""
    results = tmp_path / "impact.json"
    results.write_text(EARLIER)
    missing = tmp_path / "missing"
    result = run(["impact", "--baseline", str(missing), "--candidate", str(POLICIES), str(CLEAN),
                  "--at", AT, "--format", "json", "-o", str(results)])  # fmt: skip
    assert (result.exit_code, results.read_text()) == (2, "")


@pytest.mark.parametrize("command", sorted(DECIDING))
def test_a_run_that_decides_replaces_the_earlier_file(
    tmp_path: Path, policy_bundle: Path, command: str
) -> None:
    results = tmp_path / "results.json"
    results.write_text(EARLIER)
    result = run([*DECIDING[command], "--at", AT, "--format", "json", "-o", str(results)])
    assert result.exit_code == 0, result.stderr
    document = json.loads(results.read_text())
    decided = document if command == "check" else document["devices"][0] if command == "fleet" else None
    if decided is None:  # impact: the one device compared, nothing changed
        assert (document["summary"]["devices"], document["summary"]["changed"], document["changes"]) == (
            1,
            0,
            [],
        )
    else:
        assert (decided["device_id"], decided["allow"]) == ("be-brussels-berl-0117", True)


def test_an_output_that_would_overwrite_the_policy_or_land_in_it_is_refused(
    tmp_path: Path, policy_bundle: Path
) -> None:
    """`fleet --bundle B -o B` replaced the bundle with its results; `-o` inside `--policy DIR` or
    `--candidate DIR` became policy data at the next run."""
    bundle = tmp_path / "bundle.tar.gz"
    shutil.copy(policy_bundle, bundle)
    kept = bundle.read_bytes()
    policy = tmp_path / "proposed"
    shutil.copytree(REPO / "policies", policy)
    inside = policy / "data" / "results.json"
    cases = [
        (["fleet", str(CLEAN), "--bundle", str(bundle), "-o", str(bundle)],
         f"-o {bundle} is also --bundle {bundle}: writing would overwrite it"),
        (["check", str(CLEAN), "--policy", str(policy), "-o", str(inside)],
         f"-o {inside} is inside --policy {policy}: it would be read as part of it, or overwrite a file "
         "there; write it elsewhere"),
        (["impact", "--baseline", str(POLICIES), "--candidate", str(policy), str(CLEAN), "-o", str(inside)],
         f"-o {inside} is inside --candidate {policy}: it would be read as part of it, or overwrite a "
         "file there; write it elsewhere"),
    ]  # fmt: skip
    for args, message in cases:
        result = run([*args, "--at", AT, "--format", "json"])
        assert (result.exit_code, result.stderr) == (2, f"pyagent: error: {message}\n")
    assert bundle.read_bytes() == kept and not inside.exists()


def test_an_output_that_would_overwrite_the_bundle_decided_with_unnamed_is_refused(
    tmp_path: Path, policy_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --bundle: the checkout's build/bundle.tar.gz decides, and `-o` there replaced it with JSON."""
    from pyagent.policy import shipped

    bundle = tmp_path / "build" / "bundle.tar.gz"
    bundle.parent.mkdir()
    shutil.copy(policy_bundle, bundle)
    monkeypatch.delenv("PYAGENT_BUNDLE", raising=False)
    monkeypatch.setattr(shipped, "checkout_bundle", lambda: bundle)
    result = run(["check", str(CLEAN), "--at", AT, "--format", "json", "-o", str(bundle)])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: -o {bundle} is also the shipped policy bundle {bundle}: writing would overwrite "
        "it\n",
    )
    assert bundle.read_bytes() == policy_bundle.read_bytes()


def _under_a_file_size_limit(args: list[str], limit: int) -> subprocess.CompletedProcess[str]:
    """`pyagent ARGS` as a process whose files may not grow past ``limit`` bytes (ulimit -f)."""

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # (the write fails with EFBIG instead)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [sys.executable, "-m", "pyagent", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, preexec_fn=limited, timeout=120)


def test_a_report_that_cannot_be_written_whole_leaves_the_earlier_file_as_it_was(tmp_path: Path) -> None:
    """A full disk, a file size limit: the report there stays whole (it was left cut at the limit)."""
    capture = tmp_path / "pm-list.txt"
    capture.write_text("".join(f"package:org.example.app{i}\n" for i in range(5000)))
    earlier = tmp_path / "phone.json"
    shutil.copy(CLEAN, earlier)
    earlier.chmod(0o640)
    facts = ["--device-id", "p1", "--ownership", "personal", "--no-mdm-enrolled", "--org", "eu-council"]
    args = ["--source", "android-pm", "--from", str(capture), *facts, "-o", str(earlier)]
    cut = _under_a_file_size_limit(["collect", *args], 100_000)
    assert (cut.returncode, cut.stderr) == (
        2,
        f"pyagent: error: -o {earlier}: cannot write: File too large\n",
    )
    assert earlier.read_bytes() == CLEAN.read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["phone.json", "pm-list.txt"]  # no leftover
    written = run(["collect", *args])
    assert written.exit_code == 0, written.stderr
    assert len(json.loads(earlier.read_text())["apps"]) == 5000
    assert stat.S_IMODE(earlier.stat().st_mode) == 0o640  # the mode of the file it replaced


def test_an_output_through_a_link_or_to_a_device_is_written_there(
    tmp_path: Path, policy_bundle: Path
) -> None:
    target = tmp_path / "results" / "decision.json"
    target.parent.mkdir()
    target.write_text("earlier\n")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    linked = run(["check", str(CLEAN), "--at", AT, "--format", "json", "-o", str(link)])
    assert linked.exit_code == 0, linked.stderr
    assert link.is_symlink() and json.loads(target.read_text())["allow"] is True
    assert sorted(path.name for path in target.parent.iterdir()) == ["decision.json"]
    to_device = run(["check", str(CLEAN), "--at", AT, "--format", "json", "-o", "/dev/null"])
    assert to_device.exit_code == 0, to_device.stderr
    assert stat.S_ISCHR(Path("/dev/null").stat().st_mode)  # written to, never replaced


def test_a_generated_fleet_that_cannot_be_written_whole_leaves_the_earlier_file(tmp_path: Path) -> None:
    """An inventory is no verdict: a failed `fleet generate -o` keeps the earlier one, as `collect`."""
    earlier = tmp_path / "devices.jsonl"
    earlier.write_text(CLEAN.read_text().replace("\n", "") + "\n")
    kept = earlier.read_bytes()
    cut = _under_a_file_size_limit(["fleet", "generate", "--devices", "2000", "-o", str(earlier)], 100_000)
    assert (cut.returncode, cut.stderr) == (
        2,
        f"pyagent: error: -o {earlier}: cannot write: File too large\n",
    )
    assert earlier.read_bytes() == kept
    assert sorted(path.name for path in tmp_path.iterdir()) == ["devices.jsonl"]  # no temporary file
