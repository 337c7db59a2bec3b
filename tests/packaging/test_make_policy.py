"""`make policy` builds what `pyagent policy bundle` builds (the ban index included), and rebuilds it
whenever a file under policies/ or the code that builds it changes. Read from make itself (``-p``:
its rules; ``-n``: what it would run), without running a recipe or touching build/."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(*args: str) -> str:
    done = subprocess.run(
        ["make", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )  # fmt: skip
    return done.stdout


def test_the_bundle_depends_on_every_file_and_folder_under_policies_and_its_builder() -> None:
    [rule] = [line for line in make("-pn", "policy").splitlines() if line.startswith("build/bundle.tar.gz:")]
    prerequisites = set(rule.split(":", 1)[1].split())
    under_policies = {str(p.relative_to(REPO)) for p in (REPO / "policies").rglob("*")} | {"policies"}
    assert under_policies <= prerequisites  # a folder too: a file deleted from it changes its mtime
    assert {"pyagent/policy/index.py", "pyagent/bundles/build.py"} <= prerequisites


def test_the_recipe_is_pyagent_policy_bundle_with_the_datas_revision() -> None:
    revision = re.search(r'^revision: *"(.*)"', (REPO / "policies/data/pyagent/data.yaml").read_text(), re.M)
    assert revision is not None
    # -W: as if the ban data had just changed; -o: opa and the venv taken as they are.
    plan = make(
        "-n", "-o", ".tools/bin/opa", "-o", ".venv/.installed", "-W", "policies/data/pyagent", "policy"
    )
    [command] = [line for line in plan.splitlines() if "policy bundle" in line]
    assert command == (
        f'{REPO}/.venv/bin/python -m pyagent policy bundle -o build/bundle.tar.gz --revision "{revision[1]}"'
    )
