"""Read a device report from a file or stdin, strictly: bounded size, UTF-8, JSON, no duplicate keys, schema.

Every problem is an :class:`~pyagent.errors.InvalidInputError` (exit code 2) with a one-line message that
starts with the report's name, e.g.
``report.json: invalid JSON at line 3, column 5: Expecting ',' delimiter``.
Schema violations raise :class:`ReportInvalidError`, which carries every issue.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, BinaryIO

from pyagent.errors import InvalidInputError
from pyagent.jsonio import json_error_text, json_kind, lone_surrogate_at, path_to
from pyagent.report.bounds import report_document_bytes, report_document_values
from pyagent.report.issues import SchemaIssue, json_path, printable
from pyagent.report.validate import SchemaValidator, report_validator
from pyagent.termsafe import first_hidden
from pyagent.userfile import STDIN_NAME, decode_utf8, read_limited

__all__ = [
    "STDIN",
    "ReportInvalidError",
    "check_report",
    "load_report",
    "max_report_bytes",
    "parse_report",
    "read_report_bytes",
    "source_name",
]

#: The largest report read, in bytes: the schema's ``x-max-document-bytes`` (128 MiB).
max_report_bytes = report_document_bytes
STDIN = "-"
_UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff")  # UTF-16 (and UTF-32 LE starts with FF FE too)


class ReportInvalidError(InvalidInputError):
    """The report is well-formed JSON but does not match the schema. ``issues`` lists every violation."""

    def __init__(self, source: str, issues: list[SchemaIssue]) -> None:
        self.source = source
        self.issues = list(issues)
        count = sum(1 for issue in self.issues if not issue.omitted)
        more = sum(issue.omitted for issue in self.issues)
        first = f"; first: {self.issues[0]}" if self.issues else ""
        noun = "error" if count == 1 else "errors"
        counted = (
            f"{count} {noun} listed, and {more:,} more items with problems" if more else f"{count} {noun}"
        )
        if self._single():  # the error itself is the one line: not a summary of it, then it again
            super().__init__(self.lines()[0])
            return
        super().__init__(f"{source}: report does not match the schema ({counted}){first}")

    def _single(self) -> bool:
        return len(self.issues) == 1 and not self.issues[0].omitted

    def lines(self) -> list[str]:
        """One ``<file>: <path>: <message>`` line per issue, as the CLI prints them."""
        return [f"{self.source}: {issue.path}: {issue.message}" for issue in self.issues]

    def details(self) -> list[str]:
        return [] if self._single() else self.lines()


def source_name(source: str | Path) -> str:
    """How a report source is named in messages: the path as given, ``<stdin>`` for ``-``."""
    return STDIN_NAME if str(source) == STDIN else printable(str(source), 200)


def read_report_bytes(
    source: str | Path, stdin: BinaryIO | None = None, *, limit: int | None = None
) -> tuple[str, bytes]:
    """(name, content) of a report file, or of stdin when ``source`` is ``-``; at most ``limit`` bytes
    (default: :func:`max_report_bytes`). A pipe is a report too (``<(pyagent collect ...)``)."""
    name = source_name(source)
    limit = max_report_bytes() if limit is None else limit
    return name, read_limited(source, what="report", limit=limit, stdin=stdin, regular_only=False, name=name)


class _DuplicateKeys:
    """``object_pairs_hook`` that builds dicts and remembers the first object with a repeated key."""

    def __init__(self) -> None:
        self.first: tuple[dict[str, Any], str] | None = None

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs) and self.first is None:
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    self.first = (result, key)
                    break
                seen.add(key)
        return result


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"number {token[:40]} is out of range")
    return value


def _decode(data: bytes, name: str) -> str:
    if data.startswith(_WIDE_BOMS):
        raise InvalidInputError(f"{name}: report is UTF-16 or UTF-32 encoded; save it as UTF-8")
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InvalidInputError(f"{name}: report is binary, not JSON text (NUL byte at offset {nul})")
    text = decode_utf8(data, name=name, what="report")
    if not text or text.isspace():
        raise InvalidInputError(f"{name}: report is empty")
    return text


#: A JSON string, escapes and all (the unrolled form: no backtracking per character); its closing quote
#: optional, so that one left open ends the scan at once (required, every later quote began a new scan
#: to the end of the text: minutes on a few megabytes).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_JSON_SPACE = dict.fromkeys(map(ord, " \t\n\r"))


def json_value_count(text: str) -> int:
    """How many values the JSON ``text`` holds (objects, arrays, strings, numbers, booleans, nulls; keys
    not counted), exactly for valid JSON: each value but the document itself follows a ``,``, a ``[`` or
    a ``{`` (its first member's), once strings are out of the way, and an empty ``[]`` or ``{}`` holds
    none."""
    bare = _JSON_STRING.sub("0", text).translate(_JSON_SPACE)
    opened = bare.count("[") + bare.count("{")
    return 1 + bare.count(",") + opened - bare.count("[]") - bare.count("{}")


def _check_value_count(text: str, name: str) -> None:
    """Refuse a report of more JSON values than the schema's ``x-max-document-values``, before parsing:
    each value costs memory in every engine (some hundred bytes in the compiled policy), and a small
    value takes two bytes, so the byte bound alone lets 40 million in. Counting ``,``, ``[`` and ``{``
    in strings too, the first test is an upper bound that real reports are far below (1 us on 20 KB)."""
    bound = report_document_values()
    if 1 + text.count(",") + text.count("[") + text.count("{") <= bound:
        return
    count = json_value_count(text)
    if count > bound:
        raise InvalidInputError(
            f"{name}: report holds {count:,} JSON values; at most {bound:,} "
            "(the report schema's x-max-document-values)"
        )


def parse_report(data: bytes, name: str, *, validate: bool = True) -> dict[str, Any]:
    """Parse one report's bytes; with ``validate``, check it against the schema too."""
    text = _decode(data, name)
    _check_value_count(text, name)
    duplicates = _DuplicateKeys()
    try:
        document = json.loads(
            text, object_pairs_hook=duplicates, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except json.JSONDecodeError as err:
        raise InvalidInputError(
            f"{name}: invalid JSON at line {err.lineno}, column {err.colno}: {json_error_text(err)}"
        ) from err
    except RecursionError as err:
        raise InvalidInputError(f"{name}: invalid JSON: nested too deeply") from err
    except ValueError as err:  # a constant (NaN, Infinity), an out-of-range float, an integer too long
        reason = str(err)
        if "integer string conversion" in reason:
            reason = "a number has too many digits"
        raise InvalidInputError(f"{name}: invalid JSON: {printable(reason, 120)}") from err
    if duplicates.first is not None:
        target, key = duplicates.first
        parent = path_to(document, lambda node: node is target) or []
        raise InvalidInputError(
            f"{name}: {json_path([*parent, key])}: duplicate key; a key may appear only once in an object"
        )
    bad = lone_surrogate_at(document, text)
    if bad is not None:
        raise InvalidInputError(
            f"{name}: {json_path(bad)}: contains an unpaired UTF-16 surrogate escape "
            "(\\ud800-\\udfff), which is not Unicode text"
        )
    if not isinstance(document, dict):
        raise InvalidInputError(f"{name}: a report must be a JSON object, got {json_kind(document)}")
    if validate:
        check_report(document, name, nul_free=control_free(text))
        if not plainly_spaced(text):
            issues = unmatchable_app_ids(document)
            if issues:
                raise ReportInvalidError(name, issues)
    return document


def plainly_spaced(text: str) -> bool:
    """True when no string of the JSON ``text`` can begin or end with white space or hold an invisible
    formatting character: ASCII, no escape of such a character, and no space beside a quote (compact
    JSON has none; a pretty-printed report is then looked at string by string)."""
    return text.isascii() and "\\u" not in text and '" ' not in text and ' "' not in text


def unmatchable_app_ids(document: dict[str, Any]) -> list[SchemaIssue]:
    """An app id with white space at either end, or an invisible formatting character (U+200B, a
    bidirectional mark), names no app any ban lists, so the app would pass unbanned: refused, by its
    path (the schema takes any string without a control character)."""
    issues = []
    for index, app in enumerate(document.get("apps") or ()):
        identifier = app.get("id") if isinstance(app, dict) else None
        if not isinstance(identifier, str):
            continue
        found = first_hidden(identifier)
        if identifier.strip() != identifier:
            why = "must not begin or end with white space"
        elif found is not None:
            why = f"must not contain the invisible character U+{ord(found):04X}"
        else:
            continue
        issues.append(
            SchemaIssue(f"$.apps[{index}].id", f"{why} (no ban would match it): {printable(identifier, 80)}")
        )
    return issues


#: A JSON escape of a control character (C0 or DEL); ``\\\\n`` (a backslash, then n) matches too, and
#: only sends the document the slower way.
_CONTROL_ESCAPE = re.compile(r"\\(?:[bfnrt]|u00[01][0-9a-fA-F]|u007[fF])")


def control_free(text: str) -> bool:
    """True when no string of the JSON ``text`` can hold a control character: it has no raw DEL (which
    JSON, unlike the C0 controls, allows unescaped) and no escape of one (most reports have no
    backslash at all: 0.6 us on 25 KB, where searching ``\\u0000`` took 18)."""
    return "\x7f" not in text and ("\\" not in text or _CONTROL_ESCAPE.search(text) is None)


def check_report(
    document: object, name: str, validator: SchemaValidator | None = None, *, nul_free: bool = False
) -> None:
    """Raise :class:`ReportInvalidError` listing every issue when ``document`` does not match the schema.
    ``nul_free``: see :class:`~pyagent.report.validate.SchemaValidator`."""
    result = (validator or report_validator()).validate(document, nul_free=nul_free)
    if not result.valid:
        raise ReportInvalidError(name, result.issues)


def load_report(
    source: str | Path, stdin: BinaryIO | None = None, *, validate: bool = True
) -> dict[str, Any]:
    """Read, parse and (with ``validate``) schema-check the report at ``source``, a path or ``-`` (stdin)."""
    name, data = read_report_bytes(source, stdin)
    return parse_report(data, name, validate=validate)
