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
import json
import os

from pyagent.collectors.base import CollectorInputError
from pyagent.jsonio import json_error_text, lone_surrogate_at, path_to
from pyagent.report.issues import json_path
from pyagent.userfile import display_name, read_limited

MAX_INPUT_BYTES = 64 * 1024 * 1024


def input_name(path: str | os.PathLike[str]) -> str:
    """How messages name an input: its path, or ``<stdin>`` for ``-``."""
    return display_name(path)


def read_input_bytes(path: str | os.PathLike[str], *, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The content of the regular file at ``path`` (``-``: standard input), at most ``max_bytes`` long
    and not empty."""
    data = read_limited(path, what="input", limit=max_bytes, error=CollectorInputError)
    if not data:
        raise CollectorInputError(f"{input_name(path)}: input is empty")
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
        body = data.removeprefix(codecs.BOM_UTF8)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:  # named by its line, and its offset in the file
            line = body.count(b"\n", 0, exc.start) + 1
            offset = len(data) - len(body) + exc.start
            raise CollectorInputError(
                f"{where}:{line}: not UTF-8 text (byte 0x{body[exc.start]:02x} at offset {offset}); binary "
                "or wrong encoding"
            ) from exc
    if "\x00" in text:
        raise CollectorInputError(f"{where}: binary data (NUL character), not text")
    if not text.strip():
        raise CollectorInputError(f"{where}: no content (only whitespace)")
    return text


class _Constant:
    """Where a NaN or an Infinity stood (strict JSON has neither)."""

    def __init__(self, name: str) -> None:
        self.name = name


class _Mistakes:
    """The parse's hooks: each object built with a key said twice, each constant, in the order parsed."""

    def __init__(self) -> None:
        self.repeated: list[tuple[dict[str, object], str]] = []
        self.constants: list[_Constant] = []

    def pairs(self, items: list[tuple[str, object]]) -> dict[str, object]:
        built = dict(items)
        if len(built) != len(items) and not self.repeated:
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    self.repeated.append((built, key))
                    break
                seen.add(key)
        return built

    def constant(self, name: str) -> _Constant:
        self.constants.append(_Constant(name))
        return self.constants[-1]

    def first(self, document: object) -> str | None:
        """The first mistake, by its place: ``$[1].name: duplicate key 'name'``."""
        if self.repeated:
            target, key = self.repeated[0]
            at = path_to(document, lambda node: node is target) or []
            return f"{json_path([*at, key])}: duplicate key {key!r}"
        if self.constants:
            first = self.constants[0]
            at = path_to(document, lambda node: node is first) or []
            return f"{json_path(at)}: {first.name} is not a JSON number"
        return None


def load_json(text: str, *, where: str) -> object:
    """``text`` parsed as strict JSON (no NaN/Infinity, no key said twice: the export would say two
    things), errors as CollectorInputError naming the place (``$[3].name``) where there is one."""
    mistakes = _Mistakes()
    try:
        value = json.loads(text, parse_constant=mistakes.constant, object_pairs_hook=mistakes.pairs)
    except json.JSONDecodeError as exc:
        raise CollectorInputError(
            f"{where}: not valid JSON at line {exc.lineno}, column {exc.colno}: {json_error_text(exc)}"
        ) from exc
    except RecursionError as exc:
        raise CollectorInputError(f"{where}: JSON nested too deeply") from exc
    except ValueError as exc:  # a huge integer
        raise CollectorInputError(f"{where}: not valid JSON: {exc}") from exc
    mistake = mistakes.first(value)
    if mistake is not None:
        raise CollectorInputError(f"{where}: not valid JSON: {mistake}")
    if lone_surrogate_at(value, text) is not None:
        raise CollectorInputError(
            f"{where}: contains an unpaired UTF-16 surrogate escape (\\ud800-\\udfff), which is no text"
        )
    return value
