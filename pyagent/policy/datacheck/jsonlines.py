"""JSON policy data with the line of each value, so that a mistake in an overlay (``--data``) or in a
bundle's ``data.json`` is reported at its line and path, as one in a YAML file is. A key said twice
in one object is refused here with its line and path (the JSON reader alone names neither)."""

from __future__ import annotations

import bisect
import contextlib
import json
import re
from typing import Any

from pyagent.errors import InvalidInputError
from pyagent.jsonio import lone_surrogate_value_at, parse_json
from pyagent.policy.yamlload import DocPath, Located, dotted, too_deep

_WHITESPACE = " \t\n\r"
_NEWLINE = re.compile("\n")
_DECODER = json.JSONDecoder()


class _Duplicate(Exception):
    def __init__(self, path: DocPath, line: int, first: int) -> None:
        super().__init__(path)
        self.path, self.line, self.first = path, line, first


def load_json(raw: bytes, source: str, *, what: str, prefix: DocPath = ()) -> Located:
    """Parse ``raw`` strictly (:func:`pyagent.jsonio.parse_json`) and locate its values; a duplicate
    key is named with its line and its path in the data (the document placed at ``prefix``)."""
    try:
        value = parse_json(raw, name=source, what=what)
    except InvalidInputError:
        text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
        try:
            _scan(text, _skip(text, 0), (), Located(source, None), _newlines(text))
        except _Duplicate as dup:
            raise InvalidInputError(
                f"{source}:{dup.line}: {dotted((*prefix, *dup.path))}: duplicate key (first at line "
                f"{dup.first}); the second would replace the first"
            ) from None
        except (ValueError, IndexError, RecursionError):
            pass
        raise
    text = raw.decode("utf-8")
    located = locate(text, value, source)
    too_deep(value, source, located)
    bad = lone_surrogate_value_at(value, text)
    if bad is not None:  # (no UTF-8 carries it: it failed later, when the data was encoded, naming nothing)
        path = tuple(bad)
        raise InvalidInputError(
            f"{source}:{located.line_of(path)}: {dotted((*prefix, *path))}: contains an unpaired UTF-16 "
            "surrogate escape (\\ud800-\\udfff), which is not Unicode text"
        )
    return Located(source, value, located.lines, prefix)


def locate(text: str, value: Any, source: str) -> Located:
    """``value`` (already parsed from ``text`` by a strict JSON reader) with the line of each of its
    values; a document this scanner cannot follow keeps line 1 for what it did not reach."""
    text = text.lstrip("\ufeff")
    located = Located(source, value)
    with contextlib.suppress(ValueError, IndexError, RecursionError):  # lines are a courtesy
        _scan(text, _skip(text, 0), (), located, _newlines(text))
    return located


def _newlines(text: str) -> list[int]:
    return [m.start() for m in _NEWLINE.finditer(text)]


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def _scan(text: str, i: int, path: DocPath, located: Located, newlines: list[int]) -> int:
    """Record the line of the value starting at ``i``; return the index after it."""
    located.lines.setdefault(path, bisect.bisect_left(newlines, i) + 1)
    opener = text[i]
    if opener not in "{[":
        return int(_DECODER.raw_decode(text, i)[1])
    closer, i, n = ("}" if opener == "{" else "]"), _skip(text, i + 1), 0
    while text[i] != closer:
        step: str | int = n
        if opener == "{":
            line = bisect.bisect_left(newlines, i) + 1
            step, i = _DECODER.raw_decode(text, i)
            if (*path, step) in located.lines:
                raise _Duplicate((*path, step), line, located.lines[(*path, step)])
            located.lines[(*path, step)] = line
            i = _skip(text, _skip(text, i) + 1)  # the colon
        i = _skip(text, _scan(text, i, (*path, step), located, newlines))
        if text[i] == ",":
            i = _skip(text, i + 1)
        n += 1
    return i + 1
