"""Finding and running the pinned ``opa`` binary for the policy author's loop."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyagent.errors import InvalidInputError, NoDecisionError

CHECKOUT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = CHECKOUT / "versions.mk"
POLICY_DIRS = (CHECKOUT / "policies" / "rego", CHECKOUT / "policies" / "data")


class OpaToolError(NoDecisionError):
    """The opa binary is missing or failed to run (exit code 3)."""


def pinned_version() -> str | None:
    """The OPA version pinned in versions.mk, when this is a checkout."""
    try:
        text = VERSIONS_FILE.read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^OPA_VERSION\s*:=\s*(\S+)", text, re.MULTILINE)
    return match.group(1) if match else None


def find_opa() -> str:
    """``PYAGENT_OPA``, else the checkout's built ``.tools/bin/opa``, else ``opa`` on PATH."""
    env = os.environ.get("PYAGENT_OPA")
    if env:
        if not Path(env).is_file():
            raise OpaToolError(f"PYAGENT_OPA={env}: no such file")
        return env
    built = CHECKOUT / ".tools" / "bin" / "opa"
    if built.is_file():
        return str(built)
    on_path = shutil.which("opa")
    if on_path:
        return on_path
    raise OpaToolError("opa not found: run `make opa` (builds the pinned version) or set PYAGENT_OPA")


@dataclass(frozen=True)
class ToolRun:
    """What a tool run printed and how it ended."""

    returncode: int
    stdout: str
    stderr: str


def run_opa(args: Sequence[str], *, timeout: float = 600.0, capture: bool = True) -> ToolRun:
    """Run ``opa ARGS`` without a shell; a missing binary or a time-out is an :class:`OpaToolError`."""
    binary = find_opa()
    try:
        done = subprocess.run(
            [binary, *args], capture_output=capture, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as err:
        raise OpaToolError(f"{binary}: cannot run opa: {err.strerror}") from err
    except subprocess.TimeoutExpired as err:
        raise OpaToolError(f"opa {' '.join(args[:2])}: no result within {timeout:g} s") from err
    return ToolRun(done.returncode, done.stdout or "", done.stderr or "")


def policy_dirs(given: Sequence[str]) -> list[str]:
    """The policy directories to work on: the ones given, else the checkout's."""
    if given:
        missing = [d for d in given if not Path(d).is_dir()]
        if missing:
            raise InvalidInputError(f"{missing[0]}: no such policy directory")
        return list(given)
    return [str(d) for d in POLICY_DIRS if d.is_dir()]
