"""Locate and load the JSON Schemas shipped in the repository's ``schemas/`` folder.

Search order (first directory holding the file wins):

1. ``<repo>/schemas``: the directory next to the ``pyagent`` package (a checkout, or an editable install);
2. ``<package>/schemas``: a copy inside the package, for builds that bundle it there;
3. ``<sys.prefix>/share/pyagent/schemas``: a non-editable install that ships the folder as data files.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyagent.errors import NoDecisionError

__all__ = [
    "DECISION_SCHEMA",
    "REPORT_SCHEMA",
    "SchemaFileError",
    "find_schema",
    "load_schema",
    "schema_dirs",
]

REPORT_SCHEMA = "device-report.schema.json"
DECISION_SCHEMA = "decision.schema.json"


class SchemaFileError(NoDecisionError):
    """A schema file shipped with pyagent is missing or broken: an installation problem, exit code 3."""


def schema_dirs() -> list[Path]:
    """The directories searched for schema files, in order."""
    package = Path(__file__).resolve().parent.parent
    return [
        package.parent / "schemas",
        package / "schemas",
        Path(sys.prefix) / "share" / "pyagent" / "schemas",
    ]


def find_schema(name: str, dirs: Iterable[Path] | None = None) -> Path:
    """The path of schema file ``name``; :class:`SchemaFileError` when no directory holds it."""
    searched = list(schema_dirs() if dirs is None else dirs)
    for directory in searched:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    where = ", ".join(str(d) for d in searched)
    raise SchemaFileError(
        f"schema {name} not found (searched {where}); the pyagent installation is incomplete"
    )


@functools.cache
def _load(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise SchemaFileError(f"{path}: cannot load schema: {err}") from err
    if not isinstance(document, dict):
        raise SchemaFileError(f"{path}: a schema must be a JSON object")
    return text


def load_schema(name: str, dirs: Iterable[Path] | None = None) -> dict[str, Any]:
    """Schema ``name`` as parsed JSON: a fresh copy on each call (some compilers modify what they are given);
    the file is read once per process."""
    document: dict[str, Any] = json.loads(_load(find_schema(name, dirs)))
    return document
