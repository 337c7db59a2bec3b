"""Running the external tools collectors read from (dpkg-query, rpm, flatpak, snap, adb, osqueryi).

One helper, :func:`run_tool`: an argument list (never a shell), a minimal environment, a timeout, a cap on
output. Tool failures become :class:`~pyagent.collectors.base.CollectorError` (exit code 3) naming the
tool. POSIX only: the tool runs in its own process group, and the whole group is killed when it overruns,
so helpers it started (a shell script's ``sleep``) cannot keep its pipes open.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence

from pyagent.collectors.base import CollectorError

DEFAULT_TIMEOUT = 120.0
"""Seconds a tool may run."""
DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024
"""Bytes a tool may print on standard output."""
_MAX_STDERR_KEPT = 64 * 1024
_READ_SIZE = 64 * 1024
_FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def tool_env(passthrough: Iterable[str] = ()) -> dict[str, str]:
    """The environment a tool runs with: PATH, the C locale, and the named variables when set."""
    env = {"PATH": os.environ.get("PATH") or _FALLBACK_PATH, "LC_ALL": "C", "LANG": "C"}
    for key in passthrough:
        value = os.environ.get(key)
        if value is not None:
            env[key] = value
    return env


def find_tool(program: str) -> str | None:
    """The path ``program`` resolves to (on PATH unless it contains a slash), or None."""
    if os.sep in program:
        return program if os.access(program, os.X_OK) and os.path.isfile(program) else None
    return shutil.which(program, path=os.environ.get("PATH") or _FALLBACK_PATH)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already gone: nothing left to stop
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _first_line(stderr: bytes) -> str:
    for line in stderr.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= 200 else line[:199] + "…"
    return ""


def _pump(
    proc: subprocess.Popen[bytes], *, tool: str, deadline: float, timeout: float, max_output: int
) -> tuple[bytes, bytes]:
    assert proc.stdout is not None and proc.stderr is not None
    out: list[bytes] = []
    err: list[bytes] = []
    out_size = 0
    err_size = 0
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, "out")
        sel.register(proc.stderr, selectors.EVENT_READ, "err")
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CollectorError(f"{tool}: no result after {timeout:g} s; stopped it")
            for key, _ in sel.select(remaining):
                chunk = os.read(key.fd, _READ_SIZE)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.data == "out":
                    out_size += len(chunk)
                    if out_size > max_output:
                        raise CollectorError(
                            f"{tool}: printed more than {max_output} bytes, the limit; stopped it"
                        )
                    out.append(chunk)
                elif err_size < _MAX_STDERR_KEPT:
                    err.append(chunk)
                    err_size += len(chunk)
    return b"".join(out), b"".join(err)


def run_tool(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_output: int = DEFAULT_MAX_OUTPUT,
    env_passthrough: Iterable[str] = (),
    tool: str | None = None,
) -> bytes:
    """Run ``argv`` and return what it printed on standard output.

    ``tool`` names the program in error messages (default: the basename of ``argv[0]``). Standard input
    is empty; standard error is kept only for the error message. Raises CollectorError when the program
    is missing or cannot start, runs longer than ``timeout`` seconds, prints more than ``max_output``
    bytes, or exits with a non-zero status or on a signal.
    """
    if not argv:
        raise ValueError("run_tool needs a program")
    name = tool or os.path.basename(argv[0])
    exe = find_tool(argv[0])
    if exe is None:
        raise CollectorError(f"{name}: not found (looked for {argv[0]!r} on PATH)")
    deadline = time.monotonic() + timeout
    try:
        proc = subprocess.Popen(
            [exe, *argv[1:]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=tool_env(env_passthrough),
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise CollectorError(f"{name}: cannot start {exe}: {exc.strerror or exc}") from exc
    try:
        stdout, stderr = _pump(proc, tool=name, deadline=deadline, timeout=timeout, max_output=max_output)
        try:
            returncode = proc.wait(timeout=max(deadline - time.monotonic(), 0.001))
        except subprocess.TimeoutExpired as exc:
            raise CollectorError(f"{name}: no result after {timeout:g} s; stopped it") from exc
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    if returncode < 0:
        raise CollectorError(f"{name}: killed by signal {-returncode}")
    if returncode != 0:
        detail = _first_line(stderr) or _first_line(stdout) or "no message"
        raise CollectorError(f"{name}: exited with status {returncode}: {detail}")
    return stdout
