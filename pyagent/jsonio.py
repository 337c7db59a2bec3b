"""Strict JSON reading for everything a user gives pyagent.

Bounded size, UTF-8 only, duplicate keys refused (a document that says a key twice is
ambiguous, and silently keeping the last value would drop what the user wrote), and a
one-line error naming the file, line and column.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

from pyagent.errors import InvalidInputError
from pyagent.userfile import decode_utf8, display_name, read_limited


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
        return json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as err:
        raise InvalidInputError(
            f"{name}:{err.lineno}:{err.colno}: {what} is not valid JSON: {json_error_text(err)}"
        ) from err
    except DuplicateKeyError as err:
        raise InvalidInputError(f"{name}: {what} has a {err}") from err
    except RecursionError as err:
        raise InvalidInputError(f"{name}: {what} is nested too deeply") from err


def load_json_object(
    path: str | Path, *, what: str, max_bytes: int, stdin: BinaryIO | None = None
) -> dict[str, Any]:
    """A JSON object read from ``path``; anything else is an :class:`InvalidInputError`."""
    name = display_name(path)
    raw = read_limited(path, what=what, limit=max_bytes, stdin=stdin)
    value = parse_json(raw, name=name, what=what)
    if not isinstance(value, dict):
        raise InvalidInputError(f"{name}: {what} must be a JSON object, got {type(value).__name__}")
    return value
