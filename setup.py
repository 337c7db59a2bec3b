"""The wheel's build hook: an installed pyagent needs no checkout.

Everything else is in pyproject.toml. ``build_py`` also stages, inside the package:

- ``pyagent/schemas/``: the JSON Schemas (``pyagent.report.schemas`` looks there);
- ``pyagent/share/bundle.tar.gz``: the default policy compiled to wasm by the pinned ``opa``, with the
  Makefile's own recipe (``make package-bundle``: it finds the pinned opa, or builds it from the Go
  module proxy, exactly as ``make policy`` does), the bundle ``pyagent policy bundle`` makes (its ban
  index included: ``pyagent.policy.staging`` runs here on the standard library and PyYAML);
- ``pyagent/share/policies/``: the policy sources (``pyagent policy test|lint|bundle`` default to them);
- ``pyagent/share/docs/``: README.md, docs/*.md and deploy/ (systemd units, config example, nginx);
- ``pyagent/share/build.json``: the pinned OPA version and the policy revision the bundle was built from.

Editable installs (``make venv``) stage nothing: a checkout finds all of this in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DOCS = ("README.md", "docs/*.md", "deploy/systemd/*", "deploy/nginx/*")


def _setting(path: Path, pattern: str) -> str:
    match = re.search(pattern, path.read_text(encoding="utf-8"), re.MULTILINE)
    if not match:
        raise SystemExit(f"pyagent build: {path}: no match for {pattern!r}")
    return match.group(1)


def _copy(source: Path, target: Path) -> list[str]:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return [str(target)]


def _make_bundle(target: Path) -> None:
    """``make package-bundle``: the pinned opa compiles the policy, as ``make policy`` does."""
    make = shutil.which("make")
    if make is None:
        raise SystemExit("pyagent build: `make` is needed to compile the policy bundle into the wheel")
    args = [make, "-C", str(ROOT), "--no-print-directory", "package-bundle", f"DEST={target}"]
    args.append(f"BUILD_PYTHON={sys.executable}")  # stages the bundle root (pyagent.policy.staging)
    given = os.environ.get("PYAGENT_OPA")
    if given:
        args.append(f"OPA={given}")
    done = subprocess.run(args, check=False)
    if done.returncode != 0 or not target.is_file():
        raise SystemExit(
            "pyagent build: the policy bundle could not be compiled (make package-bundle failed above); "
            "the pinned opa comes from PYAGENT_OPA, .tools/bin/opa, a matching opa on PATH, or `make opa`"
        )


class BuildWithPolicy(build_py):
    """``build_py`` that stages the schemas, the compiled policy, its sources and the docs."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        self._staged = self._stage(Path(self.build_lib) / "pyagent")

    def _stage(self, package: Path) -> list[str]:
        # staged afresh: a build directory left by an earlier build (pip wheel ., pipx install .) kept
        # a file deleted or renamed since, and the wheel shipped policy sources the bundle was not built from
        for staged_dir in (package / "schemas", package / "share"):
            shutil.rmtree(staged_dir, ignore_errors=True)
        staged: list[str] = []
        for schema in sorted((ROOT / "schemas").glob("*.json")):
            staged += _copy(schema, package / "schemas" / schema.name)
        share = package / "share"
        for source in sorted((ROOT / "policies").rglob("*")):
            if source.is_file():
                staged += _copy(source, share / "policies" / source.relative_to(ROOT / "policies"))
        for pattern in DOCS:
            for source in sorted(ROOT.glob(pattern)):
                if source.is_file():
                    staged += _copy(source, share / "docs" / source.relative_to(ROOT))
        bundle = share / "bundle.tar.gz"
        _make_bundle(bundle)
        staged.append(str(bundle))
        info = {
            "opa_version": _setting(ROOT / "versions.mk", r"^OPA_VERSION\s*:=\s*(\S+)"),
            "policy_revision": _setting(
                ROOT / "policies" / "data" / "pyagent" / "data.yaml", r'^revision:\s*"(.*)"'
            ),
            "bundle_sha256": hashlib.sha256(bundle.read_bytes()).hexdigest(),
        }
        (share / "build.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        staged.append(str(share / "build.json"))
        return staged

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *getattr(self, "_staged", [])]


if __name__ == "__main__":  # (setuptools runs this file as __main__; a test imports it for _stage)
    setup(cmdclass={"build_py": BuildWithPolicy})
