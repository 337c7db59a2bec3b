"""Finding Debian's ``postgresql`` and ``nginx`` binaries (``make services`` installs them).

A test that needs one calls ``require_binary(name)``: it skips when the binary is absent, except on
CI (``CI=true``), which installs them, where a missing binary fails the test instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

POSTGRES_LIB = Path("/usr/lib/postgresql")
SBIN = Path("/usr/sbin")


def _version_key(directory: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15`` -> ``(15,)``; ``9.6`` -> ``(9, 6)``; non-numeric names sort first."""
    parts = directory.name.split(".")
    return tuple(int(part) for part in parts) if all(part.isdigit() for part in parts) else ()


def find_binary(name: str) -> Path | None:
    """``name`` on PATH, else in ``/usr/sbin``, else in the newest ``/usr/lib/postgresql/*/bin``.

    Symbolic links are resolved, so a PostgreSQL binary's directory holds its sibling tools
    (``pg_ctl``, ``createdb``...) of the same version.
    """
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path).resolve()
    candidates = [SBIN / name]
    if POSTGRES_LIB.is_dir():
        versions = sorted(POSTGRES_LIB.iterdir(), key=_version_key, reverse=True)
        candidates += [version / "bin" / name for version in versions]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    return None


def require_binary(name: str) -> Path:
    """The path of ``name``; skips the test when it is missing, or fails it on CI (``CI=true``)."""
    path = find_binary(name)
    if path is None:
        reason = f"{name} is not installed (run `make services`)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI installs it, so it must be there")
        pytest.skip(reason)
    return path


def stop_process(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM a server the tests started; SIGKILL it when it has not exited after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
