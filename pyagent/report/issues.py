"""Schema issues: one line each, a JSON path and what was expected, safe to print.

The reference validator (``jsonschema``) reports errors as ``ValidationError`` objects whose messages embed
``repr()`` of arbitrary, possibly huge, values. This module turns them into :class:`SchemaIssue` values with a
JSON path such as ``$.apps[3].id`` and a bounded, printable message such as
``expected one of "corporate", "personal", got "privat"``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BOUND_KEYWORDS",
    "MAX_MESSAGE_CHARS",
    "SchemaIssue",
    "issues_from_errors",
    "json_path",
    "located_issues",
    "name_too_long",
    "printable",
    "show_value",
    "sorted_issues",
    "too_big",
]

MAX_MESSAGE_CHARS = 300
_MAX_VALUE_CHARS = 60
_MAX_KEY_CHARS = 64
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@functools.cache
def _unprintable() -> re.Pattern[str]:
    """C0 and C1 controls, DEL, line/paragraph separators, bidi overrides, surrogates: never printed
    raw. Compiled on first use (0.5 ms): every one of them is also not ``str.isprintable()``, so a
    printable text never needs it."""
    return re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


_NUL_PATTERN = "^[^\\u0000]+$"
_CONTROL_PATTERN = "^[^\\u0000-\\u001f\\u007f]+$"

Location = Sequence[str | int]


@dataclass(frozen=True)
class SchemaIssue:
    """One schema violation: where (a JSON path, ``$`` is the document) and what was expected.

    ``omitted``, when not 0: this entry stands for that many more items with problems under ``path``,
    counted but not listed one by one (see :mod:`pyagent.report.validate`)."""

    path: str
    message: str
    omitted: int = 0

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def printable(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` on one line, control characters escaped (``\\u0000``), cut to ``limit`` characters."""
    escaped = text if text.isprintable() else _unprintable().sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def show_value(value: object) -> str:
    """A short, printable rendering of a JSON value for an error message."""
    if isinstance(value, str):
        if not value:
            return "an empty string"
        text = json.dumps(value[:_MAX_VALUE_CHARS], ensure_ascii=True)
        if len(value) > _MAX_VALUE_CHARS:
            text = text[:-1] + '..."'
        return printable(text, 2 * _MAX_VALUE_CHARS)
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else "a very large integer"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return printable(type(value).__name__)


def _quote(text: str, limit: int = _MAX_KEY_CHARS) -> str:
    quoted = json.dumps(text[:limit], ensure_ascii=True)
    return quoted if len(text) <= limit else quoted[:-1] + '..."'


def json_path(location: Iterable[str | int]) -> str:
    """``$.apps[3].id`` for ``("apps", 3, "id")``; odd keys are quoted: ``$.extra["a b"]``."""
    parts = ["$"]
    for step in location:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _IDENTIFIER.fullmatch(step):
            parts.append(f".{step}")
        else:
            parts.append(f"[{_quote(step)}]")
    return "".join(parts)


def _sort_key(location: Location) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, step, "") if isinstance(step, int) else (1, 0, step) for step in location)


#: The size keywords, whose messages :func:`too_big` writes (the reference's and the bounds pre-check's).
BOUND_KEYWORDS = ("maxLength", "maxItems", "maxProperties")


def too_big(keyword: str, limit: object, instance: Any) -> str:
    """The message for a value over a size keyword's ``limit``: ``too many items: 150003, at most ...``."""
    size = len(instance) if isinstance(instance, (str, list, dict)) else 0
    if keyword == "maxLength":
        return f"too long: {size} characters, at most {limit} allowed (value starts {show_value(instance)})"
    if keyword == "maxItems":
        return f"too many items: {size}, at most {limit} allowed"
    return f"too many fields: {size}, at most {limit} allowed"


def name_too_long(key: str, limit: object) -> str:
    """The message for a field name over its ``propertyNames`` ``maxLength``."""
    return f"field name {show_value(key)} is too long: {len(key)} characters, at most {limit}"


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


class _Renderer:
    """Renders ``jsonschema`` errors against one root schema (needed to follow ``$ref``)."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root

    def resolve(self, schema: Any) -> Any:
        seen = 0
        while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and seen < 32:
            ref: str = schema["$ref"]
            if not ref.startswith("#/"):
                return schema
            node: Any = self._root
            for part in ref[2:].split("/"):
                if not isinstance(node, Mapping) or part not in node:
                    return schema
                node = node[part]
            schema, seen = node, seen + 1
        return schema

    def expectation(self, schema: Any) -> str:
        """What a value must be, in words: ``one of "corporate", "personal"``, ``a string``."""
        schema = self.resolve(schema)
        if not isinstance(schema, Mapping):
            return "a value"
        if "const" in schema:
            return json.dumps(schema["const"])
        if isinstance(schema.get("enum"), list):
            return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
        if schema.get("format") == "date-time":
            return "an RFC 3339 date-time such as 2023-03-16T09:30:00Z"
        types = schema.get("type")
        names = [types] if isinstance(types, str) else types if isinstance(types, list) else []
        words = [_TYPE_WORDS.get(str(t), str(t)) for t in names]
        if "string" in names and schema.get("minLength", 0) >= 1:
            words[names.index("string")] = "a non-empty string"
        return " or ".join(words) if words else "a value"

    def render(self, error: Any) -> list[tuple[Location, str]]:
        """One or more (location, message) pairs for one ``jsonschema.ValidationError``."""
        keyword = str(error.validator)
        where: Location = list(error.absolute_path)
        instance, value, schema = error.instance, error.validator_value, error.schema
        if "propertyNames" in error.schema_path:
            return [(where, self._property_name(keyword, value, instance, error.message))]
        if keyword == "required":
            props = schema.get("properties", {})
            return [
                ([*where, name], f"required field is missing; expected {self.expectation(props.get(name))}")
                for name in value
                if isinstance(instance, Mapping) and name not in instance
            ]
        if (
            keyword == "pattern"
            and value in (_NUL_PATTERN, _CONTROL_PATTERN)
            and instance == ""
            and schema.get("minLength", 0) >= 1
        ):
            return []  # the same problem as the minLength error reported for this value
        if keyword == "additionalProperties" and value is False and isinstance(instance, Mapping):
            allowed = sorted(schema.get("properties", {}))
            return [
                ([*where, key], self._unknown_field(key, allowed)) for key in instance if key not in allowed
            ]
        return [(where, self._message(keyword, value, instance, schema, error.message))]

    def _unknown_field(self, key: str, allowed: list[str]) -> str:
        import difflib  # only for a refused report: kept off the start-up of every check

        hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.75) if len(key) <= 64 else []
        text = "unknown field" + (f' (did you mean "{hint[0]}"?)' if hint else "")
        text += "; allowed fields: " + ", ".join(allowed)
        if "extra" in allowed:
            text += '; put free-form data under "extra"'
        return text

    def _property_name(self, keyword: str, value: Any, key: object, fallback: str) -> str:
        if keyword == "maxLength" and isinstance(key, str):
            return name_too_long(key, value)
        return "field name " + printable(fallback)

    def _message(self, keyword: str, value: Any, instance: Any, schema: Any, fallback: str) -> str:
        got = show_value(instance)
        size = len(instance) if isinstance(instance, (str, list, dict)) else 0
        if keyword in ("type", "enum", "const"):
            return f"expected {self.expectation(schema)}, got {got}"
        if keyword == "minLength":
            return f"expected a string of at least {value} character{'' if value == 1 else 's'}, got {got}"
        if keyword in BOUND_KEYWORDS:
            return too_big(keyword, value, instance)
        if keyword == "pattern":
            return self._pattern(value, instance, schema, got)
        if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[keyword]
            return f"expected {self.expectation(schema)} {op} {value}, got {got}"
        if keyword == "minItems":
            return f"too few items: {size}, at least {value} required"
        if keyword == "minProperties":
            return f"too few fields: {size}, at least {value} required"
        return printable(fallback)

    def _pattern(self, pattern: str, instance: Any, schema: Any, got: str) -> str:
        if pattern == _NUL_PATTERN and isinstance(instance, str):
            if "\x00" not in instance:
                return f"expected a non-empty string, got {got}"
            position = instance.index("\x00")
            return f"must not contain a NUL character (\\u0000), found at position {position}: {got}"
        if pattern == _CONTROL_PATTERN and isinstance(instance, str):
            found = next((i for i, c in enumerate(instance) if c < " " or c == "\x7f"), None)
            if found is None:
                return f"expected a non-empty string, got {got}"
            if instance[found] == "\x00":
                return f"must not contain a NUL character (\\u0000), found at position {found}: {got}"
            code = f"\\u{ord(instance[found]):04x}"
            return f"must not contain a control character ({code}), found at position {found}: {got}"
        if schema.get("format") == "date-time":
            return (
                f"expected {self.expectation(schema)} (upper-case T and Z, a real calendar date), got {got}"
            )
        return f"expected a string matching {printable(pattern, 80)}, got {got}"


def issues_from_errors(errors: Iterable[Any], root: Mapping[str, Any]) -> list[SchemaIssue]:
    """Every ``jsonschema`` error as :class:`SchemaIssue`, deduplicated, sorted by path then message."""
    return [SchemaIssue(json_path(location), message) for location, message in located_issues(errors, root)]


def located_issues(errors: Iterable[Any], root: Mapping[str, Any]) -> list[tuple[Location, str]]:
    """:func:`issues_from_errors` with each issue's location as keys and indexes (to find its line)."""
    renderer = _Renderer(root)
    return sorted_issues(pair for error in errors for pair in renderer.render(error))


def sorted_issues(found_issues: Iterable[tuple[Location, str]]) -> list[tuple[Location, str]]:
    """(location, message) pairs, messages made printable, deduplicated, sorted by path then message."""
    found: dict[tuple[str, str], Location] = {}
    for location, message in found_issues:
        found.setdefault((json_path(location), printable(message)), location)
    ordered = sorted(found.items(), key=lambda item: (_sort_key(item[1]), item[0][1]))
    return [(location, message) for (_, message), location in ordered]
