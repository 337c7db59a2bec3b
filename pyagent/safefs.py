"""State files opened without following links: directory fds, ``O_NOFOLLOW``, ownership and mode checked
on what was opened (``fstat``), never on a path that may have changed since.

Whoever can write the agent's state can roll policy back or rewrite its decision log, and a link
planted in it could make the agent write outside it. So a state directory or file that is a symbolic
link (dangling or not), owned by another user (root excepted), or writable by group or others is
refused with a clear error (:class:`UnsafeStateError`, exit 2), and every file is created inside the
directory it was opened from (``dir_fd``), with ``O_EXCL``/``O_NOFOLLOW``, so nothing is ever created
outside it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from pyagent.errors import InvalidInputError

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
#: The largest state file read (bytes): state files are small JSON documents and one bundle.
DEFAULT_READ_LIMIT = 1 << 30


class UnsafeStateError(InvalidInputError):
    """A state directory or file that could be someone else's: refused (exit 2)."""


def check_stat(path: Path | str, st: os.stat_result, what: str) -> None:
    """Refuse a link, a file of another user (root excepted) or one that group or others may write."""
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeStateError(f"{path}: the {what} is a symbolic link; give the real one")
    euid = os.geteuid()
    if st.st_uid not in (euid, 0):
        raise UnsafeStateError(
            f"{path}: the {what} belongs to uid {st.st_uid}, not to this user (uid {euid}) or root"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(st.st_mode)
        raise UnsafeStateError(
            f"{path}: the {what} is writable by group or others (mode {mode:04o}); chmod go-w {path}"
        )


def _linked(path: Path | str, err: OSError, what: str) -> Exception:
    """The error to raise for a failed ``open``: a link refusal when ``path`` is a link (``O_NOFOLLOW``
    says ELOOP, or ENOTDIR with ``O_DIRECTORY``), else the system's own error for the caller to tell."""
    if err.errno in (errno.ELOOP, errno.ENOTDIR):
        with contextlib.suppress(OSError):
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return UnsafeStateError(f"{path}: the {what} is a symbolic link; give the real one")
    return err


def open_dir(path: Path, *, what: str, create: bool = True) -> int | None:
    """A directory fd for ``path`` (created 0700 when missing and ``create``; else None when missing),
    refused when it is a link, another user's or writable by group or others. Other failures (not a
    directory, no permission) raise the system's ``OSError``."""
    flags = os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        if not create:
            return None
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # created meanwhile, or a (dangling) link: see below
            os.mkdir(path, 0o700)  # never follows a link in its last component
        try:
            fd = os.open(path, flags)
        except OSError as err:
            raise _linked(path, err, what) from err
    except OSError as err:
        raise _linked(path, err, what) from err
    try:
        check_stat(path, os.fstat(fd), what)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def directory(path: Path, *, what: str, create: bool = True) -> Iterator[int | None]:
    """:func:`open_dir` as a context manager that closes the fd."""
    fd = open_dir(path, what=what, create=create)
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def read_file(
    dir_fd: int, name: str, *, where: Path, what: str, limit: int = DEFAULT_READ_LIMIT
) -> bytes | None:
    """The bytes of ``name`` in the directory ``dir_fd`` (``where`` names it in messages), or None when
    there is no such file. A link (even a dangling one), a non-regular file, another user's file, one
    that group or others may write, or one over ``limit`` bytes is refused."""
    path = where / name
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise _linked(path, err, what) from err
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeStateError(f"{path}: the {what} is not a regular file")
        check_stat(path, st, what)
        if st.st_size > limit:
            raise UnsafeStateError(f"{path}: the {what} is {st.st_size} bytes, over the limit of {limit}")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnsafeStateError(f"{path}: the {what} is over the limit of {limit} bytes")
    return data


def read_in(
    folder: Path, name: str, *, folder_what: str, what: str, limit: int = DEFAULT_READ_LIMIT
) -> bytes | None:
    """:func:`read_file` of ``name`` in the directory ``folder`` (``folder_what`` names it), neither
    followed through a link; None when either is missing."""
    with directory(folder, what=folder_what, create=False) as fd:
        return None if fd is None else read_file(fd, name, where=folder, what=what, limit=limit)


def write_atomic(dir_fd: int, name: str, content: bytes, *, mode: int = 0o600) -> None:
    """``content`` as ``name`` in the directory ``dir_fd``: a new file (``O_EXCL``, so never through a
    link) of ``mode`` (private unless told), fsync, rename over ``name`` (which replaces a link, never
    follows it), fsync of the directory. Raises ``OSError`` as the system does."""
    temporary = f".{name}.{secrets.token_hex(8)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=dir_fd)
    try:
        if mode != 0o600:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)


def open_private(dir_fd: int, name: str, *, where: Path, what: str) -> int:
    """A read-write fd for ``name`` in ``dir_fd`` (created 0600 when missing), for a lock file:
    never through a link; refused when not a regular file of this user."""
    path = where / name
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | _NOFOLLOW, 0o600, dir_fd=dir_fd)
    except OSError as err:
        raise _linked(path, err, what) from err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeStateError(f"{path}: the {what} is not a regular file")
        check_stat(path, st, what)
    except BaseException:
        os.close(fd)
        raise
    return fd
