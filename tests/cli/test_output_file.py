"""``-o FILE`` after an error holds no earlier run's results (a passing JUnit file left by the last
run would read as this run's), and ``-o`` naming an input is refused before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.cli.conftest import AT, EXAMPLES, REPO, run

CLEAN = EXAMPLES / "eu-commission-corporate-clean.json"


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
