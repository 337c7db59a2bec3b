"""File permissions tested where the suite runs as root (CI installs its services with apt-get, so
it does): the block runs with the effective user and group of ``nobody``, which the kernel checks
file access against, and root's are restored after. Files the block reads go in :func:`shared_dir`,
a directory ``nobody`` may enter (pytest's ``tmp_path`` is under a 0700 directory of root's)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def shared_dir() -> Iterator[Path]:
    """A new directory under /tmp that any user may enter (0711), removed after."""
    path = Path(tempfile.mkdtemp(prefix="pyagent-perm-", dir="/tmp"))
    try:
        path.chmod(0o711)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def as_unprivileged() -> Iterator[None]:
    """Run the block as ``nobody`` when root (effective ids only); as the caller otherwise."""
    if os.geteuid() != 0:
        yield
        return
    nobody = pwd.getpwnam("nobody")
    os.setegid(nobody.pw_gid)
    os.seteuid(nobody.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
