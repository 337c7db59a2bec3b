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
    peak_rss: int = 0
    """Bytes: the process's peak resident set (VmHWM from /proc), when measured."""


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


def run_pyagent_measured(*args: str, timeout: float = 60) -> Run:
    """Like :func:`run_pyagent`, with the process's peak RSS read from ``/proc/PID/status`` (VmHWM,
    the kernel's high-water mark) every few milliseconds until it exits."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "pyagent", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None and time.monotonic() - started < timeout:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    if process.poll() is None:
        process.kill()
    stdout, stderr = process.communicate(timeout=10)
    return Run(process.returncode, stdout, stderr, time.monotonic() - started, peak)
