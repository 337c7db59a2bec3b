"""Inventories of many reports: JSONL files, report files, directories of report files, ``-`` (stdin), or
a named pipe (read once, as stdin is: a shell's ``<(...)``).

Items are yielded one at a time (constant memory); each keeps where it came from (``file:line`` or
the file's path) so that an invalid report can be named in the output.

A named file or stdin whose first line is not a JSON document on its own, but which as a whole is one
JSON document (a pretty-printed report, as ``collect`` writes it), is that one report, not one broken
report per line; one that opens with a document written over several lines and more after it (reports
printed by ``jq .`` one after another) is read document by document; anything else is read as JSONL.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import stat
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pyagent.errors import InvalidInputError
from pyagent.fleet.shapes import one_document, opens_jsonl, starts_a_stream
from pyagent.report.load import max_report_bytes
from pyagent.termsafe import safe_line, shorten
from pyagent.userfile import STDIN_NAME, not_text, stdin_bytes

REPORT_SUFFIXES = (".json",)
_DECODER = json.JSONDecoder()
JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class Item:
    """One report's bytes, or why it could not be read, and where it came from."""

    source: str
    data: bytes
    error: str | None = None


_INVENTORY = "inventory (a JSONL file, a directory, a named pipe or -)"


def check_inventories(inventories: Iterable[str]) -> None:
    """Every inventory exists and can be read, checked before anything is decided: a usage error (exit 2)
    naming the first one that does not, rather than a failure after all the devices before it. Stdin
    and a named pipe can be read once: either given twice (a pipe by another name too, or as stdin) is
    refused, as the second read would wait for a writer that never comes."""
    stdin_seen = False
    pipes: dict[tuple[int, int], str] = {}
    for inventory in inventories:
        if inventory == "-":
            if stdin_seen:
                raise InvalidInputError("- (stdin) is given twice: it can be read once")
            stdin_seen = True
            with contextlib.suppress(OSError):  # no stdin to look at: its read says so
                _once(pipes, os.fstat(0), "- (stdin)")
            continue
        _once(pipes, check_readable(inventory, what=_INVENTORY, pipe=True), inventory)


def _once(pipes: dict[tuple[int, int], str], info: os.stat_result, name: str) -> None:
    """Note ``name`` as read once when ``info`` is a named pipe's; refuse it if that pipe was noted."""
    if not stat.S_ISFIFO(info.st_mode):
        return
    pipe = (info.st_dev, info.st_ino)
    if pipe in pipes:
        raise InvalidInputError(f"{name}: the named pipe {pipes[pipe]} is given again: it can be read once")
    pipes[pipe] = name


def check_readable(path: str, *, what: str, directory: bool = False, pipe: bool = False) -> os.stat_result:
    """``path`` exists, is a regular file or a directory (only a directory if ``directory``; a named
    pipe too if ``pipe``), and this process may read it (list and enter it, for a directory); its
    ``stat``, or :class:`InvalidInputError` naming it if not."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such {what}") from None
    except OSError as err:
        raise InvalidInputError(f"{path}: cannot read this {what}: {err.strerror}") from None
    mode = info.st_mode
    is_dir = stat.S_ISDIR(mode)
    if directory and not is_dir:
        raise InvalidInputError(f"{path}: not a directory, so not a usable {what}")
    if not is_dir and not stat.S_ISREG(mode) and not (pipe and stat.S_ISFIFO(mode)):
        kinds = "a regular file, a directory or a named pipe" if pipe else "a regular file or a directory"
        raise InvalidInputError(f"{path}: not {kinds}, so not a usable {what}")
    effective = os.access in os.supports_effective_ids  # what open() checks: the effective user's rights
    if not os.access(path, os.R_OK | os.X_OK if is_dir else os.R_OK, effective_ids=effective):
        raise InvalidInputError(f"{path}: cannot read this {what}: permission denied")
    return info


def iter_items(inventories: Iterable[str], stdin: BinaryIO | None = None) -> Iterator[Item]:
    """Every report in ``inventories``, in order, after :func:`check_inventories` has checked them all.

    The check runs when this is called, not when the first item is taken; so does the first item's
    read: inventories without a single report are a usage error before any output is written."""
    inventories = list(inventories)
    check_inventories(inventories)
    empty: list[str] = []  # inventories given without a report (an empty JSONL file or directory)
    items = _items(inventories, stdin, empty.append)
    first = next(items, None)
    if first is None:  # (the error alone: no note for each empty inventory)
        named = ", ".join(safe_line(i if i != "-" else STDIN_NAME) for i in inventories)
        raise InvalidInputError(f"no reports found in the inventories given ({shorten(named, 200)})")
    return itertools.chain([first], items, _noted(empty))


def _noted(empty: list[str]) -> Iterator[Item]:
    """No item: once the reports are read, each inventory given that held none is said, not passed over."""
    for inventory in empty:
        print(f"pyagent: note: {safe_line(inventory)}: no reports in this inventory", file=sys.stderr)
    yield from ()


def _items(inventories: list[str], stdin: BinaryIO | None, empty: Callable[[str], None]) -> Iterator[Item]:
    for inventory in inventories:
        if inventory == "-":
            if not (yield from _counted(_reports(stdin if stdin is not None else stdin_bytes(), STDIN_NAME))):
                empty(STDIN_NAME)
            continue
        path = Path(inventory)
        if path.is_dir():
            if not (yield from _counted(_directory(path))):
                empty(inventory)
        elif (regular := path.is_file()) or path.is_fifo():
            try:  # checked readable before; this still fails if it changed since, or on an I/O error
                with path.open("rb") as handle:
                    yielded = yield from _counted(_reports(handle, str(path)))
            except OSError as err:
                raise InvalidInputError(
                    f"{inventory}: cannot read this {_INVENTORY}: {err.strerror or err}"
                ) from None
            if not yielded and regular and path.suffix.lower() not in JSONL_SUFFIXES:  # a report
                yield Item(str(path), b"", error=f"{path}: empty: no report in it")  # file without one
            elif not yielded:
                empty(inventory)
        else:
            raise InvalidInputError(f"{inventory}: no such {_INVENTORY}")


def _counted(items: Iterator[Item]) -> Generator[Item, None, int]:
    """``items``, returning how many there were."""
    count = 0
    for item in items:
        count += 1
        yield item
    return count


def _walk(root: Path) -> tuple[list[Path], list[Item]]:
    """Every path under ``root`` (links not followed), sorted, and an invalid item for each directory
    that cannot be listed (``Path.rglob`` passes over those without a word)."""
    paths: list[Path] = []
    unreadable: list[Item] = []

    def refused(err: OSError) -> None:
        where = err.filename or str(root)
        reason = f"{where}: cannot read this directory: {err.strerror or err}: its reports are not read"
        unreadable.append(Item(str(where), b"", error=reason))

    for current, dirs, files in os.walk(root, onerror=refused):
        paths += [Path(current, name) for name in (*dirs, *files)]
    return sorted(paths), unreadable


def _directory(root: Path) -> Iterator[Item]:
    """The reports of the files under ``root`` named ``*.json``, ``*.jsonl`` or ``*.ndjson``, any case,
    each read as a named file is (one document, else JSONL). One so named that is not a regular
    file (a symbolic link, which could lead out of the directory; a FIFO) is not read: it is an
    invalid item, so the run cannot pass without it. Files named otherwise are passed over, counted in
    one note on stderr."""
    skipped: list[Path] = []
    paths, unreadable = _walk(root)
    yield from unreadable
    for path in paths:
        named = path.suffix.lower() in (*JSONL_SUFFIXES, *REPORT_SUFFIXES)
        if path.is_symlink() or not (path.is_dir() or path.is_file()):
            if named:
                reason = "a symbolic link, not followed" if path.is_symlink() else "not a regular file"
                yield Item(str(path), b"", error=f"{path}: {reason}: not read as a report")
            else:
                skipped.append(path)
            continue
        if path.is_dir():
            continue
        if not named:
            skipped.append(path)
            continue
        yield from _file_reports(path, jsonl=path.suffix.lower() in JSONL_SUFFIXES)
    if skipped:
        print(
            safe_line(
                f"pyagent: note: {root}: passed over {len(skipped)} file(s) not named *.json, *.jsonl or "
                f"*.ndjson, e.g. {skipped[0]}"
            ),
            file=sys.stderr,
        )


def _file_reports(path: Path, *, jsonl: bool) -> Iterator[Item]:
    """The reports of one file of a directory. It is opened without following a link or waiting on a
    FIFO, and must be a regular file then; one that cannot be read, or a *.json without a report (an
    empty file), is an invalid item: that device is invalid, the others are decided."""
    yielded = False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                yield Item(str(path), b"", error=f"{path}: not a regular file: not read as a report")
                return
            for item in _reports(handle, str(path)):  # (as a named file is: a *.jsonl may hold one report)
                yielded = True
                yield item
    except OSError as err:  # a link put in its place (ELOOP), an I/O error part way...
        yield Item(str(path), b"", error=f"{path}: cannot read: {err.strerror or err}")
        return
    if not yielded and not jsonl:
        yield Item(str(path), b"", error=f"{path}: empty: no report in it")


def _reports(stream: BinaryIO, name: str) -> Iterator[Item]:
    """The reports of a named file or of stdin: one JSON document as a whole, else JSONL."""
    limit = max_report_bytes()
    start = stream.read(8192)  # (a NUL in the first 8 KiB is binary, as git tells it)
    if not_text(start) and not opens_jsonl(start):  # one error for the file: no "line" of it is a device
        yield Item(
            name, b"", error=f"{name}: binary, not JSON text (a NUL byte in its first 8 KiB): not a report"
        )
        return
    stream = _chain(start, stream)
    first, blank = stream.readline(limit + 1), 0
    while first and not first.strip():
        first, blank = stream.readline(limit + 1), blank + 1
    if not first or len(first) > limit or one_document(first):
        yield from _jsonl(_chain(first, stream), name, blank)
        return
    head = [first]  # whole lines, up to one report's bound: a report written over several lines?
    size = len(first)
    while size <= limit:
        line = stream.readline(limit + 1 - size)
        if not line:
            break
        head.append(line)
        size += len(line)
    whole = b"".join(head)
    if size <= limit and one_document(whole):
        yield Item(name, whole)
        return
    if starts_a_stream(whole):
        yield from _documents(_chain(whole, stream), name, limit, first_line=blank + 1)
        return
    yield from _jsonl(_chain(whole, stream), name, blank)


def _documents(stream: BinaryIO, name: str, limit: int, *, first_line: int = 1) -> Iterator[Item]:
    """The JSON documents of ``stream`` one after another, each named by the line it starts on. What
    cannot be read on (not JSON, not UTF-8, a document over ``limit``) ends the reading: the rest is
    one invalid item that says so, never dropped without a word. Lines are read until a document is
    complete, doubling what is held, so that each is decoded about twice whatever its size."""
    held, line, at_end = "", first_line, False
    try:
        while True:
            start = len(held) - len(held.lstrip())
            if start == len(held) and not at_end:
                held, at_end = _read_more(stream, held, limit, first=line == first_line and not held)
                continue
            line += held.count("\n", 0, start)
            held = held[start:]
            if not held:
                return
            try:
                _, end = _DECODER.raw_decode(held)
            except json.JSONDecodeError as err:
                if err.pos < len(held.rstrip()) or at_end:
                    where = f"invalid JSON at line {line + err.lineno - 1}, column {err.colno}: {err.msg}"
                    raise _Unreadable(line, where) from None
                if len(held.encode()) > limit:
                    raise _Unreadable(line, _too_large(limit)) from None
                held, at_end = _read_more(stream, held, limit)  # the document is not all there yet
                continue
            except RecursionError:
                end = len(held)  # nested too deeply to tell where it ends: the report's reader refuses it
            yield Item(f"{name}:{line}", held[:end].encode())
            line += held.count("\n", 0, end)
            held = held[end:]
    except _Unreadable as err:
        at = err.line or line
        yield Item(f"{name}:{at}", b"", error=f"{name}:{at}: {err.reason}; the rest of {name} is not read")
    except UnicodeDecodeError:
        yield Item(f"{name}:{line}", b"", error=f"{name}:{line}: not UTF-8; the rest of {name} is not read")


class _Unreadable(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line, self.reason = line, reason


def _too_large(limit: int) -> str:
    return f"a document larger than {limit // 2**20} MiB"


def _read_more(stream: BinaryIO, held: str, limit: int, *, first: bool = False) -> tuple[str, bool]:
    """``held`` with at least as much again read from ``stream``, in whole lines (a UTF-8 BOM first in
    the stream dropped); True once the stream ends. Raises UnicodeDecodeError, and :class:`_Unreadable`
    for a line over ``limit``."""
    wanted = max(len(held), 65536)
    chunks = [held]
    while wanted > 0:
        chunk = stream.readline(limit + 1)
        if not chunk:
            return "".join(chunks), True
        if len(chunk) > limit:
            raise _Unreadable(0, _too_large(limit))
        if first:
            chunk, first = chunk.removeprefix(b"\xef\xbb\xbf"), False
        text = chunk.decode("utf-8")
        chunks.append(text)
        wanted -= len(text)
    return "".join(chunks), False


def _chain(head: bytes, stream: BinaryIO) -> BinaryIO:
    """``head`` then the rest of ``stream``, as one stream that ``readline`` can read."""
    if not head:
        return stream
    return io.BufferedReader(_ChainRaw(io.BytesIO(head), stream))


class _ChainRaw(io.RawIOBase):
    def __init__(self, *parts: BinaryIO) -> None:
        self._parts = list(parts)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._parts:
            data = self._parts[0].read(len(buffer))
            if data:
                buffer[: len(data)] = data
                return len(data)
            self._parts.pop(0)
        return 0


def _jsonl(stream: BinaryIO, name: str, skipped: int = 0) -> Iterator[Item]:
    """Each line a report, named ``name:LINE`` (``skipped``: blank lines read before ``stream``)."""
    limit = max_report_bytes()
    number = skipped
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            # Skip the rest of the oversized line, but say so: nothing is dropped silently.
            while line and not line.endswith(b"\n"):
                line = stream.readline(limit + 1)
            yield Item(
                f"{name}:{number}", b"", error=f"{name}:{number}: report is larger than {limit // 2**20} MiB"
            )
            continue
        if not line.strip():
            continue
        yield Item(f"{name}:{number}", line)
