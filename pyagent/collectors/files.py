"""Reading inventory files safely.

Rules, for every file a collector reads:

- ``-`` is standard input (read up to the same bound); any other path must name a regular file once
  symbolic links are followed; FIFOs, sockets, devices and directories are refused (a FIFO is opened
  non-blocking, so it cannot hang the reader). A symbolic link to a regular file is read like the file;
  a dangling link is refused. The check is made on the opened file descriptor, so the file cannot be
  swapped between check and read;
- it must not be empty, and not larger than ``max_bytes`` (64 MiB by default), checked before and while
  reading;
- text formats must be UTF-8 (a UTF-8 byte order mark is dropped; UTF-16 with a byte order mark, as
  Windows PowerShell writes, is accepted too) with no NUL byte;
- JSON must be strict JSON (:func:`load_json`): no NaN or Infinity, bounded nesting.

Every refusal is a :class:`~pyagent.collectors.base.CollectorInputError` naming the file.
"""

from __future__ import annotations

import codecs
import errno
import json
import os
import stat
import sys

from pyagent.collectors.base import CollectorInputError
from pyagent.jsonio import json_error_text

MAX_INPUT_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def input_name(path: str | os.PathLike[str]) -> str:
    """How messages name an input: its path, or ``<stdin>`` for ``-``."""
    name = os.fspath(path)
    return "<stdin>" if name == "-" else name


def _read_stdin(max_bytes: int) -> bytes:
    try:
        data = sys.stdin.buffer.read(max_bytes + 1)
    except OSError as exc:
        raise CollectorInputError(f"<stdin>: cannot read: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise CollectorInputError(f"<stdin>: more than the {max_bytes}-byte limit")
    if not data:
        raise CollectorInputError("<stdin>: empty")
    return data


def read_input_bytes(path: str | os.PathLike[str], *, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The content of the regular file at ``path`` (``-``: standard input), at most ``max_bytes`` long
    and not empty."""
    name = os.fspath(path)
    if name == "-":
        return _read_stdin(max_bytes)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(name, flags)
    except FileNotFoundError as exc:
        if os.path.islink(name):
            raise CollectorInputError(f"{name}: symbolic link to a missing file") from exc
        raise CollectorInputError(f"{name}: no such file") from exc
    except IsADirectoryError as exc:
        raise CollectorInputError(f"{name}: is a directory, not a file") from exc
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "error")
        raise CollectorInputError(f"{name}: cannot open: {reason}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CollectorInputError(f"{name}: is {_kind(info.st_mode)}, not a regular file")
        if info.st_size > max_bytes:
            raise CollectorInputError(f"{name}: {info.st_size} bytes, more than the {max_bytes}-byte limit")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, _CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise CollectorInputError(f"{name}: grew past the {max_bytes}-byte limit while read")
            chunks.append(chunk)
    except OSError as exc:
        raise CollectorInputError(f"{name}: cannot read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if not data:
        raise CollectorInputError(f"{name}: file is empty")
    return data


def decode_text(data: bytes, *, where: str) -> str:
    """``data`` decoded as UTF-8 (or BOM-marked UTF-16) text; binary data is refused."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise CollectorInputError(f"{where}: not valid UTF-16 text (byte {exc.start})") from exc
    else:
        if b"\x00" in data:
            raise CollectorInputError(f"{where}: binary data (NUL byte at offset {data.index(0)}), not text")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CollectorInputError(
                f"{where}: not UTF-8 text (invalid byte at offset {exc.start}); binary or wrong encoding"
            ) from exc
    if "\x00" in text:
        raise CollectorInputError(f"{where}: binary data (NUL character), not text")
    if not text.strip():
        raise CollectorInputError(f"{where}: no content (only whitespace)")
    return text


def read_input_text(path: str | os.PathLike[str], *, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The text of the file at ``path``: :func:`read_input_bytes` then :func:`decode_text`."""
    return decode_text(read_input_bytes(path, max_bytes=max_bytes), where=input_name(path))


def load_json(text: str, *, where: str) -> object:
    """``text`` parsed as strict JSON (no NaN/Infinity), errors as CollectorInputError."""

    def _reject_constant(name: str) -> object:
        raise CollectorInputError(f"{where}: {name} is not valid JSON")

    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise CollectorInputError(
            f"{where}: not valid JSON at line {exc.lineno}, column {exc.colno}: {json_error_text(exc)}"
        ) from exc
    except RecursionError as exc:
        raise CollectorInputError(f"{where}: JSON nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise CollectorInputError(f"{where}: not valid JSON: {exc}") from exc
