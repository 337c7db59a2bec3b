"""Finding and running the pinned ``opa`` binary for the policy author's loop."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyagent.errors import InvalidInputError, NoDecisionError
from pyagent.policy import shipped


class OpaToolError(NoDecisionError):
    """The opa binary failed to run or timed out (exit code 3)."""


class OpaNotFoundError(InvalidInputError):
    """No opa binary to run: a setup problem the user fixes (exit code 2); the message says how."""


def pinned_version() -> str | None:
    """The OPA version pinned in versions.mk (a checkout), or the one the installed wheel was built with."""
    return shipped.pinned_opa_version()


def how_to_get_opa() -> str:
    """One sentence: where pyagent looks for opa, and how to get the pinned one."""
    version = pinned_version()
    at = f"@v{version}" if version else "@latest"
    if shipped.checkout() is not None:
        get = f"run `make opa` (builds the pinned v{version} into .tools/bin)"
    else:
        pinned = f" v{version}" if version else ""
        get = f"install OPA{pinned} (`go install github.com/open-policy-agent/opa{at}`)"
    return f"{get}, put opa on PATH, or set PYAGENT_OPA to its path"


def find_opa() -> str:
    """``PYAGENT_OPA``, else the checkout's built ``.tools/bin/opa``, else ``opa`` on PATH."""
    env = os.environ.get("PYAGENT_OPA")
    if env:
        if not (Path(env).is_file() and os.access(env, os.X_OK)):
            raise OpaNotFoundError(f"PYAGENT_OPA={env}: not an executable file; {how_to_get_opa()}")
        return env
    root = shipped.checkout()
    built = root / ".tools" / "bin" / "opa" if root else None
    if built is not None and built.is_file() and os.access(built, os.X_OK):
        return str(built)
    on_path = shutil.which("opa")
    if on_path:
        return on_path
    raise OpaNotFoundError(f"opa not found: {how_to_get_opa()}")


@dataclass(frozen=True)
class ToolRun:
    """What a tool run printed and how it ended."""

    returncode: int
    stdout: str
    stderr: str

    def problem(self) -> str:
        """Why the run failed, on one line: opa's error lines (``FILE:LINE: rego_parse_error: ...``;
        ``opa build`` prints them on stdout, ``opa test`` and ``opa check`` on stderr), without the
        quoted source and caret lines under each, joined by "; "."""
        for text in (self.stderr, self.stdout):
            lines = [line.removeprefix("error: ").strip() for line in text.splitlines()]
            kept = [
                line
                for line, raw in zip(lines, text.splitlines(), strict=True)
                if line and not raw[:1].isspace()
            ]
            if kept:  # "2 errors occurred:" introduces the lines after it
                return "".join(f"{line} " if line.endswith(":") else f"{line}; " for line in kept).rstrip(
                    "; "
                )
        return f"opa exited with status {self.returncode}"


def run_opa(
    args: Sequence[str], *, timeout: float = 600.0, capture: bool = True, cwd: Path | None = None
) -> ToolRun:
    """Run ``opa ARGS`` (in ``cwd``) without a shell; a missing binary or a time-out is an
    :class:`OpaToolError`."""
    binary = find_opa()
    try:
        done = subprocess.run(
            [binary, *args], cwd=cwd, capture_output=capture, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as err:
        raise OpaToolError(f"{binary}: cannot run opa: {err.strerror}") from err
    except subprocess.TimeoutExpired as err:
        raise OpaToolError(f"opa {' '.join(args[:2])}: no result within {timeout:g} s") from err
    return ToolRun(done.returncode, done.stdout or "", done.stderr or "")


#: The policy of the working directory, when no directory is given.
LOCAL_POLICY = "policies"


def policy_dirs(given: Sequence[str]) -> list[str]:
    """The policy directories to work on: the ones given; else ``policies/`` of the working directory
    when it is a policy root (a policy repository's, as the help says), or the working directory
    itself when it is one (a copy being edited); else, with a note, the shipped policy's
    sources (the checkout's ``policies/``, or the copy inside an installed package). A policy root holding
    ``rego/`` and ``data/`` is read as those two roots, so that its data is ``data.pyagent`` (one
    root would put it at ``data.data.pyagent``)."""
    if given:
        missing = [d for d in given if not Path(d).is_dir()]
        if missing:
            raise InvalidInputError(f"{missing[0]}: no such policy directory")
        split = [[str(Path(d) / "rego"), str(Path(d) / "data")] for d in given]
        return [p for d, two in zip(given, split, strict=True) for p in (two if _is_root(d) else [d])]
    if local_policy():
        return [str(Path(LOCAL_POLICY) / "rego"), str(Path(LOCAL_POLICY) / "data")]
    if _is_root("."):  # the working directory is a policy root itself (a copy being edited)
        return ["rego", "data"]
    found = [str(d) for d in shipped.policy_sources() if d.is_dir()]
    if not found:
        raise InvalidInputError("no policy directory given, and this pyagent ships no policy sources")
    # said, so that no one takes the shipped policy's "clean" for their own folder's
    print(f"pyagent: note: no policy here; working on the shipped one ({', '.join(found)})", file=sys.stderr)
    return found


def local_policy() -> bool:
    """Whether the working directory holds a policy (``policies/rego`` and ``policies/data``); one
    with only one of them is refused (InvalidInputError) rather than passed over for the shipped one."""
    local = Path(LOCAL_POLICY)
    halves = [(local / half).is_dir() for half in ("rego", "data")]
    if any(halves) and not all(halves):
        has, lacks = ("rego", "data") if halves[0] else ("data", "rego")
        raise InvalidInputError(
            f"{local / has}: there is no {local / lacks} beside it; give the policy's directories "
            f"(e.g. pyagent policy test {'REGO_DIR ' if has == 'data' else ''}{local / has}"
            f"{' DATA_DIR' if has == 'rego' else ''})"
        )
    return all(halves)


def _is_root(directory: str) -> bool:
    return (Path(directory) / "rego").is_dir() and (Path(directory) / "data").is_dir()
