"""Issue 17: bumping `revision` in data.yaml, as its comment asks, breaks no test; the revision is
carried from the data into the bundle and every decision."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from tests.helpers.policy_data import shipped_revision
from tests.policy_data.conftest import REPO, run

BUMPED = "2099.12.31-7"
REPORT = REPO / "examples" / "reports" / "india-personal-lite.json"
#: Tests that never read the policy data: hand-written decisions rendered by the output formats, and
#: a demo policy built with an explicit --revision. A revision literal there is not the data's.
NOT_THE_DATA = ("tests/outputs/", "tests/engines/test_wasm_runtime.py")


def bump(root: Path) -> None:
    data = root / "data" / "pyagent" / "data.yaml"
    text = data.read_text(encoding="utf-8")
    data.write_text(
        text.replace(f'revision: "{shipped_revision()}"', f'revision: "{BUMPED}"'), encoding="utf-8"
    )
    assert BUMPED in data.read_text(encoding="utf-8")


def test_a_bumped_revision_passes_the_rego_tests_and_reaches_the_decision(
    policy_copy: Path, tmp_path: Path
) -> None:
    bump(policy_copy)
    tested = run(["policy", "test", str(policy_copy)])
    assert tested.exit_code == 0, tested.stderr
    out = tmp_path / "bundle.tar.gz"
    built = run(["policy", "bundle", str(policy_copy), "-o", str(out)])  # no --revision: the data's
    assert (built.exit_code, built.stderr) == (0, f"wrote {out}\n")
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("/.manifest"))  # type: ignore[arg-type]
    assert manifest["revision"] == BUMPED
    args = ["check", str(REPORT), "--bundle", str(out), "--at", "2023-03-16T09:30:00Z", "--format", "json"]
    decided = run(args)
    assert decided.exit_code == 1, decided.stderr
    assert json.loads(decided.stdout)["policy_revision"] == BUMPED


def test_no_test_spells_out_the_data_revision() -> None:
    """Rego and Python tests read the revision from the data (tests.helpers.policy_data), never
    repeat it: a literal would break on the next bump."""
    literal = shipped_revision()
    tests = [*(REPO / "policies").rglob("*_test.rego"), *(REPO / "tests").rglob("*.py")]
    spelled = [
        str(path.relative_to(REPO))
        for path in tests
        if literal in path.read_text(encoding="utf-8")
        and not str(path.relative_to(REPO)).startswith(NOT_THE_DATA)
    ]
    assert spelled == []


def test_bundle_without_output_writes_here_not_over_the_make_built_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    built = run(["policy", "bundle", str(REPO / "policies")])
    assert (built.exit_code, built.stderr) == (0, "wrote bundle.tar.gz\n")
    with tarfile.open(tmp_path / "bundle.tar.gz") as tar:
        assert json.load(tar.extractfile("/.manifest"))["revision"] == shipped_revision()  # type: ignore[arg-type]
    (REPO / "build").mkdir(exist_ok=True)  # make's output folder (git-ignored)
    monkeypatch.chdir(REPO / "build")
    refused = run(["policy", "bundle"])
    assert refused.exit_code == 2
    shipped = f"{REPO / 'policies' / 'rego'}, {REPO / 'policies' / 'data'}"
    assert refused.stderr == (
        f"pyagent: note: no policy here; working on the shipped one ({shipped})\n"
        f"pyagent: error: {REPO / 'build' / 'bundle.tar.gz'} is the make-built bundle; give -o to replace it "
        "(see pyagent policy bundle --help)\n"
    )
