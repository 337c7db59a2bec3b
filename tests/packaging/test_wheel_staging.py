"""The wheel's staged files (setup.py's build hook) mirror the checkout as it is: a build directory left
by an earlier in-tree build (``pip wheel .``, ``pipx install .``) kept a policy file deleted or renamed
since, and the installed ``policy bundle`` then refused the shipped policy as a merge conflict."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _setup_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pyagent_setup", REPO / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # (setup() runs only as __main__, as setuptools runs the file)
    return module


def test_staging_drops_what_an_earlier_build_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup = _setup_module()
    monkeypatch.setattr(setup, "_make_bundle", lambda target: target.write_bytes(b"bundle"))
    package = tmp_path / "build" / "lib" / "pyagent"
    left = [
        package / "share" / "policies" / "data" / "pyagent" / "bans" / "data.yml",  # renamed since
        package / "schemas" / "removed.schema.json",
        package / "share" / "docs" / "docs" / "gone.md",
    ]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("left by an earlier build\n")
    staged = setup.BuildWithPolicy._stage(object(), package)
    assert not any(path.exists() for path in left)

    def files(root: Path) -> list[Path]:
        return sorted(path.relative_to(root) for path in root.rglob("*") if path.is_file())

    assert files(package / "share" / "policies") == files(REPO / "policies")
    assert files(package / "schemas") == files(REPO / "schemas")
    assert str(package / "share" / "bundle.tar.gz") in staged
