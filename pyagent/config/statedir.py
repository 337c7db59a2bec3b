"""The agent's state directory (spool, bundles, serials) and the safety checks on it.

Default: ``/var/lib/pyagent`` as root, else ``$XDG_STATE_HOME/pyagent`` (else ``~/.local/state/pyagent``).
Whoever can write the state can roll policy back or rewrite the decision log, so a state directory or
spool that is a symbolic link, another user's (root excepted), or that its group or others may write,
is refused; so is a link in place of one of the spool's SQLite side files (``-wal``, ``-shm``,
``-journal``), through which SQLite would create a file outside the state directory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pyagent.errors import InvalidInputError

ROOT_STATE_DIR = Path("/var/lib/pyagent")


def default_state_dir() -> Path:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return ROOT_STATE_DIR
    xdg = os.environ.get("XDG_STATE_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "pyagent"


def _check(path: Path, st: os.stat_result, what: str, hint: str) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise InvalidInputError(f"{path}: the {what} is a symbolic link; {hint}")
    euid = os.geteuid()
    if st.st_uid not in (euid, 0):
        raise InvalidInputError(
            f"{path}: the {what} belongs to uid {st.st_uid}, not to this user (uid {euid}) or root"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(st.st_mode)
        raise InvalidInputError(
            f"{path}: the {what} is writable by group or others (mode {mode:04o}); chmod go-w {path}"
        )


def private_dir(path: Path, *, what: str = "state directory") -> Path:
    """``path`` as a directory only this user (and root) writes: created 0700 when missing."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        try:
            path.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            pass
        except OSError as err:
            raise InvalidInputError(
                f"{path}: cannot create the {what}: {err.strerror or err}"
                " (set agent.state_dir or --state-dir)"
            ) from err
        st = path.lstat()
    except OSError as err:
        raise InvalidInputError(f"{path}: cannot use the {what}: {err.strerror or err}") from err
    _check(path, st, what, "give the real directory (agent.state_dir or --state-dir)")
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInputError(f"{path}: the {what} is not a directory")
    return path


def private_file(path: Path, *, what: str) -> Path:
    """``path`` when it does not exist yet or is a regular file only this user writes; its directory
    must be one too."""
    try:
        parent = path.parent.lstat()
    except FileNotFoundError:
        parent = None
    except OSError as err:
        raise InvalidInputError(f"{path.parent}: cannot use the {what}'s directory: {err.strerror}") from err
    if parent is not None:
        _check(path.parent, parent, f"{what}'s directory", "give the real directory")
    try:
        st = path.lstat()
    except FileNotFoundError:
        return path
    except OSError as err:
        raise InvalidInputError(f"{path}: cannot use the {what}: {err.strerror or err}") from err
    _check(path, st, what, "give the real file")
    return path


def sqlite_side_files(path: Path, *, what: str) -> None:
    """Refuse a link (or another user's file) in place of ``path``'s SQLite side files: SQLite opens
    them by name, following links, and would create their targets wherever they point."""
    for suffix in ("-wal", "-shm", "-journal"):
        side = Path(f"{path}{suffix}")
        try:
            st = side.lstat()
        except FileNotFoundError:
            continue
        except OSError as err:
            raise InvalidInputError(f"{side}: cannot use the {what}: {err.strerror or err}") from err
        _check(side, st, what, "remove it")
