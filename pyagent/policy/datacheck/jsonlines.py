"""Lines of the values in a JSON document, so that a data mistake in an overlay (``--data``) or in a
bundle's ``data.json`` is reported at its line, as one in a YAML file is."""

from __future__ import annotations

import bisect
import contextlib
import json
from typing import Any

from pyagent.policy.yamlload import DocPath, Located

_WHITESPACE = " \t\n\r"
_DECODER = json.JSONDecoder()


def locate(text: str, value: Any, source: str) -> Located:
    """``value`` (already parsed from ``text`` by a strict JSON reader) with the line of each of its
    values; a document this scanner cannot follow keeps line 1 for what it did not reach."""
    newlines = [i for i, c in enumerate(text) if c == "\n"]
    located = Located(source, value)
    with contextlib.suppress(ValueError, IndexError):  # lines are a courtesy: the value is parsed
        _scan(text, _skip(text, 0), (), located, newlines)
    return located


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
            step, i = _DECODER.raw_decode(text, i)
            located.lines[(*path, step)] = bisect.bisect_left(newlines, i) + 1
            i = _skip(text, _skip(text, i) + 1)  # the colon
        i = _skip(text, _scan(text, i, (*path, step), located, newlines))
        if text[i] == ",":
            i = _skip(text, i + 1)
        n += 1
    return i + 1
