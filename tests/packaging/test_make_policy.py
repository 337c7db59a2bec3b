"""`make policy` builds what `pyagent policy bundle` builds (the ban index included), and rebuilds it
whenever a file under policies/ or the code that builds it changes. Read from make itself (``-p``:
its rules; ``-n``: what it would run), without running a recipe or touching build/. `make
package-bundle` (the wheel's bundle, built where only setuptools and PyYAML are installed) builds the
same bundle too."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyagent.bundles.build import build_unsigned_bundle
from pyagent.engines.wasm.bundle import read_archive, read_members

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
    assert {
        "pyagent/policy/index.py",
        "pyagent/policy/staging.py",
        "pyagent/bundles/build.py",
    } <= prerequisites


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


def _revision() -> str:
    found = re.search(r'^revision: *"(.*)"', (REPO / "policies/data/pyagent/data.yaml").read_text(), re.M)
    assert found is not None
    return found[1]


def test_the_wheels_bundle_is_what_pyagent_policy_bundle_builds(opa_bin: str, tmp_path: Path) -> None:
    wheel_bundle = tmp_path / "wheel" / "bundle.tar.gz"
    make("package-bundle", f"DEST={wheel_bundle}", f"OPA={opa_bin}", f"BUILD_PYTHON={sys.executable}")
    dirs = [REPO / "policies" / "rego", REPO / "policies" / "data"]
    built = build_unsigned_bundle(dirs, tmp_path / "built.tar.gz", revision=_revision())
    wheel, same = (read_members(read_archive(path), label=str(path)) for path in (wheel_bundle, built))
    assert wheel == same
    data = json.loads(wheel["data.json"])
    assert sorted(data) == ["pyagent", "pyagent_build", "pyagent_index"]
    assert data["pyagent_build"] == {"revision": _revision()}


def test_the_staging_root_needs_only_the_standard_library_and_pyyaml(tmp_path: Path) -> None:
    """What an sdist build has: the staging module imports no distribution but PyYAML (and pyagent)."""
    script = (
        "import json, sys; from importlib.metadata import packages_distributions; "
        "from pyagent.policy import staging; "
        f"code = staging.main([{str(tmp_path / 'stage')!r}, 'r-1', 'policies/rego', 'policies/data']); "
        "owners = packages_distributions(); "
        "print(json.dumps(sorted({d for m in list(sys.modules) for d in owners.get(m.split('.')[0], [])}))); "
        "sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) <= {"pyagent", "PyYAML", "setuptools"}  # (setuptools: its .pth hook)
    assert json.loads((tmp_path / "stage" / "pyagent_build" / "data.json").read_text()) == {"revision": "r-1"}
    assert (tmp_path / "stage" / "pyagent_index" / "data.json").is_file()
    assert not list((tmp_path / "stage").rglob("*_test.rego"))
