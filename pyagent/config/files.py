"""Reading configuration files and secrets, bounded: TOML (``agent.toml``) or YAML (OPA's ``config.yaml``).

The format follows the file name: ``.yaml``, ``.yml`` and ``.json`` are read as YAML (JSON is YAML), any
other name as TOML. A secret (a bearer token, the decision log's HMAC key) is never a value in the
config: it is the first line of a file of its own, named by a ``*_path`` or ``*_file`` key.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from pyagent.errors import InvalidInputError
from pyagent.userfile import read_text

MAX_CONFIG_BYTES = 1024 * 1024
MAX_SECRET_BYTES = 64 * 1024
YAML_SUFFIXES = (".yaml", ".yml", ".json")


def default_config_path() -> Path:
    """``PYAGENT_CONFIG`` when set, else this OS's documented location."""
    env = os.environ.get("PYAGENT_CONFIG")
    if env:
        return Path(env)
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "pyagent" / "agent.toml"
    if sys.platform == "darwin":
        return Path("/Library/Application Support/pyagent/agent.toml")
    return Path("/etc/pyagent/agent.toml")


def read_document(path: Path) -> dict[str, Any]:
    """The parsed config at ``path`` (a regular file of at most 1 MiB), as a dict of tables."""
    text = read_text(path, what="config", limit=MAX_CONFIG_BYTES)
    document = _yaml(text, path) if path.suffix.lower() in YAML_SUFFIXES else _toml(text, path)
    if not isinstance(document, dict):
        raise InvalidInputError(f"{path}: config must be a mapping of tables, not {type(document).__name__}")
    return document


def _toml(text: str, path: Path) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InvalidInputError(f"{path}: config is not valid TOML: {err}") from err


def _yaml(text: str, path: Path) -> Any:
    import yaml  # only for OPA-style config files

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = " ".join(str(err).split())
        raise InvalidInputError(f"{path}: config is not valid YAML: {first}") from err
    return {} if document is None else document


def read_secret(path: Path, *, what: str) -> str:
    """The first line of a token or key file, stripped; empty or unreadable is a usage error. A pipe
    is a secret too (``<(pass show pyagent/token)``)."""
    text = read_text(path, what=what, limit=MAX_SECRET_BYTES, regular_only=False).strip()
    if not text or "\n" in text:
        raise InvalidInputError(f"{path}: {what} must be one non-empty line")
    return text
