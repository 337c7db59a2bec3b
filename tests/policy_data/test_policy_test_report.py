"""`pyagent policy test`: a failing Rego test shows the expected and the actual value, and a summary."""

from __future__ import annotations

import re
from pathlib import Path

from tests.policy_data.conftest import run

POLICY = """package demo

double(x) := x * 2

greeting := {"to": "world", "n": 2, "tags": ["a", "b"]}
"""

TESTS = """package demo_test

import data.demo

test_double if {
	demo.double(2) == 5
}

test_greeting if {
	demo.greeting == {"to": "world", "n": 2, "tags": ["a", "c"]}
}

test_passes if demo.double(1) == 2

test_not_six if {
	x := demo.double(3)
	x != 6
}
"""


def test_each_failing_test_shows_expected_actual_and_the_first_difference(tmp_path: Path) -> None:
    (tmp_path / "demo.rego").write_text(POLICY)
    (tmp_path / "demo_test.rego").write_text(TESTS)
    result = run(["policy", "test", str(tmp_path)])
    where = tmp_path / "demo_test.rego"
    assert result.exit_code == 1
    assert result.stderr == (
        f"FAIL data.demo_test.test_double ({where}:5)\n"
        f"  {where}:6: demo.double(2) == 5\n"
        "    expected: 5\n"
        "    actual:   4\n"
        f"FAIL data.demo_test.test_greeting ({where}:9)\n"
        f'  {where}:10: demo.greeting == {{"to": "world", "n": 2, "tags": ["a", "c"]}}\n'
        '    expected: {"n": 2, "tags": ["a", "c"], "to": "world"}\n'
        '    actual:   {"n": 2, "tags": ["a", "b"], "to": "world"}\n'
        '    first difference at .tags[1]: expected "c", got "b"\n'
        f"FAIL data.demo_test.test_not_six ({where}:15)\n"
        f"  {where}:17: x != 6\n"
        "    expected a value other than 6, got it\n"
        "policy test: 1 passed, 3 failed (of 4)\n"
    )


def test_a_failing_decision_test_names_the_field_that_differs(policy_copy: Path) -> None:
    """On the shipped policy: the whole decision is compared, the difference is named by its path."""
    tests = policy_copy / "rego" / "pyagent" / "decision" / "decision_test.rego"
    text = tests.read_text()
    tests.write_text(text.replace('"scope": "personal-enrolled",', '"scope": "corporate",', 1))
    result = run(["policy", "test", str(policy_copy)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"FAIL data.pyagent.decision_test.test_contract_example_full_document ({tests}:51)"
    assert lines[1] == f"  {tests}:58: d == {{"
    assert (
        lines[4]
        == '    first difference at .violations[0].scope: expected "corporate", got "personal-enrolled"'
    )
    summary = re.fullmatch(r"policy test: (\d+) passed, 1 failed \(of (\d+)\)", lines[5])
    assert summary is not None and int(summary[1]) + 1 == int(summary[2])
