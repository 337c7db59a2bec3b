"""The attacker's side: `pyagent` runs as its own process against fake servers that only inject
faults, and decisions come from a real OPA."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float


def run_pyagent(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> Run:
    """``python -m pyagent ARGS`` as a separate process: its exit code, streams and wall time."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pyagent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


@pytest.fixture
def write_report(tmp_path: Path) -> Any:
    """Writes a report document to a file of the test's own and returns its path."""

    def write(document: dict[str, Any], name: str = "report.json") -> str:
        path = tmp_path / name
        path.write_text(json.dumps(document), encoding="utf-8")
        return str(path)

    return write
