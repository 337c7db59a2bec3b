"""One agent at a time on a spool and on a state directory.

Two agents on one spool interleave their records (the chain stays intact, but each one's runs,
uploads and status are mixed with the other's); two on one state directory race each other's bundle
activations. ``agent run`` therefore holds an exclusive lock for as long as it runs: ``SPOOL.lock``
beside the spool, and ``STATE_DIR/agent.lock`` when it keeps bundles in a state directory. The lock
is flock(2): the kernel lets go of it when the process ends, however it ends, so a killed agent leaves
no stale lock behind. The file says which process holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pyagent.errors import InvalidInputError


def lock_path_for_spool(spool: Path) -> Path:
    return spool.with_name(spool.name + ".lock")


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "another process"
    return f"process {text}" if text.isdigit() else "another process"


@contextlib.contextmanager
def held(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created 0600, never through a link) for the block;
    refuse at once, as a usage error, when another process holds it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as err:
        reason = "it is a symbolic link" if err.errno == errno.ELOOP else err.strerror or str(err)
        raise InvalidInputError(f"{path}: cannot open the lock of the {what}: {reason}") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvalidInputError(
                f"{path}: another pyagent agent ({_holder(fd)}) runs on this {what}; one agent at a "
                "time (stop it first, or give this one its own --state-dir)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # (closing the only descriptor lets go of the lock)


@contextlib.contextmanager
def agent_locks(spool: Path, state_dir: Path | None) -> Iterator[None]:
    """The spool's lock, and the state directory's when the agent keeps bundles there (``state_dir``),
    wherever its spool is: an agent with its spool there and one with its spool elsewhere shared the
    bundles, each holding a lock the other did not look at."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(held(lock_path_for_spool(spool), "spool"))
        if state_dir is not None:
            stack.enter_context(held(state_dir / "agent.lock", "state directory"))
        yield
