"""The codebase's own shape, as the developers' brief asks it: modules small enough to read whole, and
test modules that share helpers through conftest or helper modules, never by importing each other (an
import of a test module runs its fixtures' and parametrizations' set-up a second time, and hides where
a helper lives)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAX_LINES = 400
"""Of a module of the package or the benchmarks."""
MAX_TEST_LINES = 450
"""Of a test module (parametrised tables of exact messages make them longer)."""


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


def _over(paths: list[Path], bound: int) -> dict[str, int]:
    lengths = {p.relative_to(REPO).as_posix(): len(p.read_text(encoding="utf-8").splitlines()) for p in paths}
    return {name: lines for name, lines in lengths.items() if lines > bound}


def test_the_package_and_benchmarks_have_no_module_over_the_bound() -> None:
    paths = _modules("pyagent", "bench")
    assert len(paths) > 150  # the walk found the package
    assert _over(paths, MAX_LINES) == {}


def test_no_test_module_is_over_the_bound() -> None:
    paths = _modules("tests")
    assert len(paths) > 150
    assert _over(paths, MAX_TEST_LINES) == {}


def _imported_test_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    names += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    return [
        name for name in names if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")
    ]


def test_no_test_module_imports_another() -> None:
    found = {
        path.relative_to(REPO).as_posix(): imported
        for path in _modules("tests")
        if (imported := _imported_test_modules(path))
    }
    assert found == {}


def test_an_import_of_a_test_module_is_found(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import tests.cli.test_check\n"
        "from tests.fleet.test_fleet_cli import run\n"
        "from tests.fleet.runs import AT\n"
    )
    assert _imported_test_modules(sample) == ["tests.fleet.test_fleet_cli", "tests.cli.test_check"]
