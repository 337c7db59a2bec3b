"""A policy needing a built-in the embedded engine lacks is refused before rollout: by ``policy
bundle`` (no file left behind), by the lint check and by the server's publish, naming each built-in and
the rule that calls it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyagent.cli import cli
from pyagent.engines.wasm.builtins import HOST_BUILTINS, docs_section
from pyagent.engines.wasm.capabilities import BuiltinUse, find_uses, problems_in_dirs
from tests.helpers.opa_bin import opa_binary
from tests.helpers.opa_server import POLICY_DIRS

POLICY = """package pyagent.decision

import rego.v1

stamp := time.now_ns()

decision := {"allow": true, "label": label, "at": stamp}

label := uuid.rfc4122(input.device_id) if {
	strings.count(input.device_id, "-") > 0 # a built-in the engine provides is no problem
}
"""
REASON = "decisions take the time from their input (input.at), so each can be replayed"


def _refusal(path: str, rows: tuple[int, int] = (5, 9)) -> str:
    return (
        "built-ins the embedded engine does not provide: "
        f"time.now_ns called by pyagent.decision.stamp ({path}:{rows[0]}) (refused: {REASON}); "
        f"uuid.rfc4122 called by pyagent.decision.label ({path}:{rows[1]})"
    )


@pytest.fixture
def needy_policy(tmp_path: Path) -> Path:
    root = tmp_path / "policy"
    (root / "pyagent").mkdir(parents=True)
    (root / "pyagent" / "decision.rego").write_text(POLICY)
    return root


def test_policy_bundle_refuses_a_policy_needing_missing_builtins(needy_policy: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle.tar.gz"
    result = CliRunner().invoke(cli, ["policy", "bundle", str(needy_policy), "-o", str(out)])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: {out}: {_refusal(f'{needy_policy}/pyagent/decision.rego')}\n",
    )
    assert not out.exists()


def test_lint_check_names_the_builtins_and_the_rules(needy_policy: Path) -> None:
    assert problems_in_dirs([str(needy_policy)]) == [_refusal(f"{needy_policy}/pyagent/decision.rego")]


def test_policy_lint_refuses_a_policy_needing_missing_builtins(needy_policy: Path) -> None:
    result = CliRunner().invoke(cli, ["policy", "lint", str(needy_policy)])
    assert (result.exit_code, result.stderr) == (
        2,
        f"{_refusal(f'{needy_policy}/pyagent/decision.rego')}\nlint: problems found\n",
    )


def test_the_shipped_policy_needs_nothing_the_engine_lacks() -> None:
    assert problems_in_dirs([str(d) for d in POLICY_DIRS]) == []


def test_publish_refuses_a_wasm_build_needing_missing_builtins(needy_policy: Path, tmp_path: Path) -> None:
    out = tmp_path / "direct.tar.gz"
    build = ["build", "-b", "-t", "wasm", "-e", "pyagent/decision", "--revision", "r1", "-o", str(out), "."]
    subprocess.run(
        [opa_binary(), *build],
        cwd=needy_policy,
        check=True,
        capture_output=True,
    )
    db = f"sqlite:///{tmp_path / 'server.db'}"
    result = CliRunner().invoke(cli, ["server", "publish", "--name", "pyagent", str(out), "--db", db])
    assert (result.exit_code, result.stderr) == (  # lines of the Rego in the bundle (as opa build wrote it)
        2,
        f"pyagent: error: {out}: {_refusal('pyagent/decision.rego', (7, 9))}\n",
    )


def test_docs_list_the_builtins_the_engine_provides() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "policy.md").read_text(encoding="utf-8")
    assert "\n".join(docs_section()) in page
    assert all(f"- `{name}`" in page for name in HOST_BUILTINS)


def test_calls_are_found_in_their_rule_not_in_comments() -> None:
    source = (
        "package p.q\n\nimport rego.v1\n\n# time.now_ns() in a comment\nimports_ok := time.now_ns()\n\n"
        'deny contains m if {\n\tx := 1\n\tm := sprintf("%v", [uuid.rfc4122(x)])\n}\n'
    )
    assert find_uses({"f.rego": source}, ["time.now_ns", "uuid.rfc4122"]) == [
        BuiltinUse("time.now_ns", "p.q.imports_ok", "f.rego:6"),
        BuiltinUse("uuid.rfc4122", "p.q.deny", "f.rego:10"),
    ]
