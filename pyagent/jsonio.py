"""Strict JSON reading for everything a user gives pyagent.

Bounded size, UTF-8 only, duplicate keys refused (a document that says a key twice is
ambiguous, and silently keeping the last value would drop what the user wrote), and a
one-line error naming the file, line and column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pyagent.errors import InvalidInputError
from pyagent.userfile import decode_utf8


class DuplicateKeyError(ValueError):
    """An object in the document has the same key twice."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` that refuses an object with a repeated key (DuplicateKeyError)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(f"duplicate key {key!r}")
        result[key] = value
    return result


#: A surrogate's escape: only then can a parsed string hold a lone surrogate (the parser joins pairs).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def path_to(root: Any, match: Callable[[Any], bool]) -> list[str | int] | None:
    """The location of the first node (depth first, iterative) for which ``match`` holds."""
    stack: list[tuple[Any, list[str | int]]] = [(root, [])]
    while stack:
        node, where = stack.pop()
        if match(node):
            return where
        if isinstance(node, dict):
            stack.extend((value, [*where, key]) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, [*where, index]) for index, value in enumerate(node))
    return None


def _not_unicode(text: object) -> bool:
    if not isinstance(text, str):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _has_lone_surrogate(node: Any) -> bool:
    return _not_unicode(node) or (isinstance(node, dict) and any(_not_unicode(key) for key in node))


def storable(value: Any) -> Any:
    """``value`` (parsed JSON, or a record to be stored) as UTF-8 can carry it: every lone surrogate in
    a string or key written as its escape (``\\udcff``), the rest as it is. Text from the network (a
    server's error message, a tar member's name read with ``surrogateescape``) may hold one, and
    encoding it as UTF-8 would fail where it is stored (the spool, a status message, the log file)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return _escaped(value)
    return value  # (the common case: nothing to change, nothing copied)


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_escaped(key): _escaped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(item) for item in value]
    return value


#: What a parsed JSON value is, in JSON's words (not Python's ``NoneType`` or ``list``).
_KINDS = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def json_kind(value: object) -> str:
    """``value``'s kind as a message names it: "an array", "null", "true or false"."""
    return _KINDS.get(type(value), "a value")


def lone_surrogate_at(document: Any, text: str) -> list[str | int] | None:
    """Where ``document`` (parsed from ``text``) holds a string or a key with an unpaired surrogate,
    which no UTF-8 can carry; None when it holds none. Looked for only when ``text`` has a
    surrogate escape."""
    return path_to(document, _has_lone_surrogate) if _SURROGATE_ESCAPE.search(text) else None


def lone_surrogate_value_at(document: Any, text: str) -> list[str | int] | None:
    """As :func:`lone_surrogate_at`, for string values only: keys left to the caller's own checks of
    names (which say more of them)."""
    return path_to(document, _not_unicode) if _SURROGATE_ESCAPE.search(text) else None


def json_error_text(err: json.JSONDecodeError) -> str:
    """What :mod:`json` says about ``err``, as a phrase that ends (the caller gives the line and column).

    Python's "Unterminated string starting at" and "Invalid control character at" leave their position
    to a suffix the caller reports apart; they end in "here" instead. A document that stops inside a
    value says so.
    """
    text = err.msg[: -len(" at")] + " here" if err.msg.endswith(" at") else err.msg
    if err.msg.startswith("Unterminated string") or err.pos >= len(err.doc.rstrip()):
        text += " (the document ends too early: truncated?)"
    return text


def parse_json(raw: bytes, *, name: str, what: str) -> Any:
    """Parse ``raw`` as JSON with the checks above."""
    if not raw.strip():
        raise InvalidInputError(f"{name}: {what} is empty")
    text = decode_utf8(raw, name=name, what=what)
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        return json.loads(text, object_pairs_hook=unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise InvalidInputError(
            f"{name}:{err.lineno}:{err.colno}: {what} is not valid JSON: {json_error_text(err)}"
        ) from err
    except DuplicateKeyError as err:
        raise InvalidInputError(f"{name}: {what} has a {err}") from err
    except RecursionError as err:
        raise InvalidInputError(f"{name}: {what} is nested too deeply") from err
    except _NotJsonNumber as err:
        raise InvalidInputError(f"{name}: {what} is not valid JSON: {err}") from None
    except ValueError:  # Python's bound on an integer's digits
        raise InvalidInputError(f"{name}: {what} has a number with too many digits (over 4,300)") from None


class _NotJsonNumber(ValueError):
    pass


def _no_constant(word: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity``, which Python's reader takes and JSON (and OPA) do not."""
    raise _NotJsonNumber(f"{word} is not a JSON number")
