"""Reading a file the user named, bounded: one reader for reports, policy data, configs, keys and secrets.

A path given on the command line or in a config may name anything: a missing file, a directory, a
device (``/dev/zero`` given as a key must not fill the memory), a file of gigabytes. Every such file is
read through :func:`read_limited`, which never reads more than its limit plus one byte and says in one
line what was refused and where (an :class:`~pyagent.errors.InvalidInputError`, exit code 2).

Writing one (``-o FILE``) goes through :func:`replace_file`: a failed write (a full disk, a file size
limit) leaves the file that was there as it was, never a half-written report in its place.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pyagent.errors import InvalidInputError

#: How a file's name reads in messages when it is standard input (``-``).
STDIN_NAME = "<stdin>"


def size_text(limit: int) -> str:
    """``limit`` bytes as people write it: ``128 MiB``, ``64 KiB``, else in bytes."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit >= scale and limit % scale == 0:
            return f"{limit // scale} {unit}"
    return f"{limit} bytes"


def stdin_bytes() -> BinaryIO:
    """Standard input as bytes; a closed one (``<&-``) is an error that says so, not a crash."""
    if sys.stdin is None:
        raise InvalidInputError(
            f"- ({STDIN_NAME}): standard input is closed; pipe the input in, or name a file"
        )
    return sys.stdin.buffer


def display_name(path: str | os.PathLike[str]) -> str:
    """The name messages give ``path``: ``<stdin>`` for ``-``."""
    name = os.fspath(path)
    return STDIN_NAME if name == "-" else name


def read_limited(
    path: str | os.PathLike[str],
    *,
    what: str,
    limit: int,
    stdin: BinaryIO | None = None,
    regular_only: bool = True,
    error: type[InvalidInputError] = InvalidInputError,
    name: str | None = None,
) -> bytes:
    """The bytes of ``path`` (``-``: standard input, or ``stdin``), at most ``limit`` of them.

    Missing, unreadable, over ``limit`` or (with ``regular_only``) not a regular file is ``error``,
    whose message starts with the file's name and names it as ``what`` ("report", "config", ...).
    ``regular_only=False`` also takes a pipe (a secret given as ``<(pass show token)``); a device is
    still read no further than ``limit``. ``name`` replaces the path in messages.
    """
    name = display_name(path) if name is None else name
    if os.fspath(path) == "-":
        raw = (stdin if stdin is not None else stdin_bytes()).read(limit + 1)
    else:
        raw = _read_file(Path(path), name, what=what, limit=limit, regular_only=regular_only, error=error)
    if len(raw) > limit:
        raise error(f"{name}: {what} is larger than {size_text(limit)}")
    return raw


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _read_file(
    path: Path, name: str, *, what: str, limit: int, regular_only: bool, error: type[InvalidInputError]
) -> bytes:
    # O_NONBLOCK: opening a pipe nobody writes to must not hang before its type is checked.
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | (os.O_NONBLOCK if regular_only else 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as err:
        dangling = " (a symbolic link to a missing file)" if path.is_symlink() else ""
        raise error(f"{name}: {what} not found{dangling}") from err
    except IsADirectoryError as err:
        raise error(f"{name}: {what} is a directory, not a regular file") from err
    except OSError as err:
        raise error(f"{name}: cannot read {what}: {err.strerror or err}") from err
    info = os.fstat(fd)
    mode = info.st_mode
    if stat.S_ISDIR(mode) or (regular_only and not stat.S_ISREG(mode)):
        os.close(fd)
        raise error(f"{name}: {what} is {_kind(mode)}, not a regular file")
    if stat.S_ISREG(mode) and info.st_size > limit:
        os.close(fd)
        raise error(f"{name}: {what} is larger than {size_text(limit)}")
    with os.fdopen(fd, "rb") as handle:
        try:
            return handle.read(limit + 1)
        except OSError as err:
            raise error(f"{name}: cannot read {what}: {err.strerror or err}") from err


def read_text(
    path: str | os.PathLike[str],
    *,
    what: str,
    limit: int,
    regular_only: bool = True,
    error: type[InvalidInputError] = InvalidInputError,
) -> str:
    """:func:`read_limited`, decoded as UTF-8 (anything else is ``error``)."""
    raw = read_limited(path, what=what, limit=limit, regular_only=regular_only, error=error)
    return decode_utf8(raw, name=display_name(path), what=what, error=error)


def decode_utf8(
    raw: bytes, *, name: str, what: str, error: type[InvalidInputError] = InvalidInputError
) -> str:
    """``raw`` as UTF-8 text; anything else is ``error`` naming the first bad byte and its offset."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = raw[err.start]
        raise error(f"{name}: {what} is not UTF-8 text (byte 0x{bad:02x} at offset {err.start})") from err


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def replace_file(output: str, data: bytes) -> None:
    """``data`` as the file ``output``, whole or not at all (:func:`replacing`). Raises ``OSError``."""
    with replacing(output) as handle:
        handle.write(data)


class Replacement:
    """The file ``output``, written anew beside it: :meth:`commit` puts it in place whole, :meth:`abort`
    drops it and leaves the file that was there as it was. A new temporary file beside it (``O_EXCL``,
    so never through a link), fsync, rename over it, fsync of the directory; through a link, the file
    the link names; with the mode of the file it replaces (a new one: as ``open`` would make it). A
    device or a pipe (``-o /dev/stdout``) is written to as it is. Raises ``OSError`` as the system does."""

    def __init__(self, output: str) -> None:
        import secrets

        self.target = Path(os.path.realpath(output))
        try:
            mode: int | None = self.target.stat().st_mode
        except FileNotFoundError:
            mode = None
        self.temporary: Path | None = None
        if mode is not None and not stat.S_ISREG(mode):
            self.stream: BinaryIO = self.target.open("wb")
            return
        temporary = self.target.parent / f".{self.target.name}.{secrets.token_hex(8)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, stat.S_IMODE(mode) if mode else 0o666 & ~_umask())
            self.stream = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        self.temporary = temporary

    def commit(self) -> None:
        """Everything written, in place of the file (or, on a device, flushed); on an error, aborted."""
        temporary = self.temporary  # (None: a device or a pipe, written to as it is)
        try:
            self.stream.flush()
            if temporary is not None:
                os.fsync(self.stream.fileno())
            self.stream.close()
            if temporary is not None:
                os.replace(temporary, self.target)
                self.temporary = None
        except BaseException:
            self.abort()
            raise
        if temporary is None:
            return
        directory = os.open(self.target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def abort(self) -> None:
        """Nothing of this writing stays (the temporary file goes); errors on the way are not raised: the
        one that made the caller abort stands."""
        with contextlib.suppress(OSError, ValueError):
            self.stream.close()
        if self.temporary is not None:
            with contextlib.suppress(OSError):
                self.temporary.unlink()
            self.temporary = None


@contextlib.contextmanager
def replacing(output: str) -> Iterator[BinaryIO]:
    """A stream to the file ``output`` that replaces it whole when the block ends, or not at all when
    it raises (:class:`Replacement`). Raises ``OSError`` as the system does."""
    replacement = Replacement(output)
    try:
        yield replacement.stream
    except BaseException:
        replacement.abort()
        raise
    replacement.commit()


def not_text(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) is binary: a NUL byte, in what does not open as UTF-16 or
    UTF-32 does (a byte-order mark; those, and bytes that are not UTF-8, are each line's to say)."""
    return b"\0" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff"))
