"""One HTTP stack: every HTTP request pyagent makes goes through ``pyagent/bounded_http/``.

The bounds of issue 16 (no redirect, one deadline, a size limit) hold only if nothing else opens a
connection; a second client library (``requests``, ``opa-python-client``, ``urllib.request``) would
bring its own defaults back. Read from the sources' imports, so a new one fails here by name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pyagent

PACKAGE = Path(pyagent.__file__).parent
BOUNDED = PACKAGE / "bounded_http"
#: Modules that open connections or send requests; ``urllib.parse`` (URL parsing) is not among them.
HTTP_CLIENTS = {
    "aiohttp",
    "http.client",
    "httpx",
    "httpx2",
    "opa_client",
    "requests",
    "urllib.request",
    "urllib3",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _clients(names: set[str]) -> set[str]:
    return {name for name in names if any(name == c or name.startswith(f"{c}.") for c in HTTP_CLIENTS)}


def test_only_bounded_http_imports_an_http_client() -> None:
    found = {
        str(path.relative_to(PACKAGE.parent)): sorted(_clients(_imports(path)))
        for path in sorted(PACKAGE.rglob("*.py"))
        if BOUNDED not in path.parents and _clients(_imports(path))
    }
    assert found == {}


def test_bounded_http_is_on_the_standard_library_client() -> None:
    """The control: the scan sees the modules that do import a client."""
    found = {path.name: _clients(_imports(path)) for path in sorted(BOUNDED.glob("*.py"))}
    assert found == {
        "__init__.py": set(),
        "core.py": {"http.client"},
        "session.py": {"http.client"},
        "tls.py": set(),
        "unix.py": {"http.client"},
    }
