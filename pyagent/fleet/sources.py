"""Inventories of many reports: JSONL files, directories of report files, or ``-`` (JSONL on stdin).

Items are yielded one at a time (constant memory); each keeps where it came from (``file:line`` or
the file's path) so that an invalid report can be named in the output.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pyagent.errors import InvalidInputError
from pyagent.report.load import MAX_REPORT_BYTES

REPORT_SUFFIXES = (".json",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class Item:
    """One report's bytes, or why it could not be read, and where it came from."""

    source: str
    data: bytes
    error: str | None = None


def iter_items(inventories: Iterable[str], stdin: BinaryIO | None = None) -> Iterator[Item]:
    """Every report in ``inventories``, in order. A missing inventory is a usage error (exit 2)."""
    for inventory in inventories:
        if inventory == "-":
            yield from _jsonl(stdin if stdin is not None else sys.stdin.buffer, "<stdin>")
            continue
        path = Path(inventory)
        if path.is_dir():
            yield from _directory(path)
        elif path.is_file():
            with path.open("rb") as handle:
                yield from _jsonl(handle, str(path))
        else:
            raise InvalidInputError(f"{inventory}: no such inventory (a JSONL file, a directory or -)")


def _directory(root: Path) -> Iterator[Item]:
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        if path.suffix in JSONL_SUFFIXES:
            with path.open("rb") as handle:
                yield from _jsonl(handle, str(path))
        elif path.suffix in REPORT_SUFFIXES:
            yield _file_item(path)


def _file_item(path: Path) -> Item:
    with path.open("rb") as handle:
        data = handle.read(MAX_REPORT_BYTES + 1)
    if len(data) > MAX_REPORT_BYTES:
        return Item(str(path), b"", error=f"{path}: report is larger than {MAX_REPORT_BYTES // 2**20} MiB")
    return Item(str(path), data)


def _jsonl(stream: BinaryIO, name: str) -> Iterator[Item]:
    number = 0
    while True:
        line = stream.readline(MAX_REPORT_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_REPORT_BYTES and not line.endswith(b"\n"):
            # Skip the rest of the oversized line, but say so: nothing is dropped silently.
            while line and not line.endswith(b"\n"):
                line = stream.readline(MAX_REPORT_BYTES + 1)
            yield Item(f"{name}:{number}", b"", error=f"{name}:{number}: report is larger than 64 MiB")
            continue
        if not line.strip():
            continue
        yield Item(f"{name}:{number}", line)
