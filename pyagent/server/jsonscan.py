"""A JSON array's elements found without parsing them: for a decision-log batch no parser takes whole.

A real OPA logs the input it was asked about as it was given: nested up to Go's 10,000 levels (the
parsers here take about 1,000) or holding ``1e400`` (out of a double's range: orjson refuses it,
and a stored document could not hold it). OPA resends a batch the server refuses, forever, so such an
event must be acknowledged and left out, and the batch's other events stored.

:func:`array_items` checks the whole body's syntax (strict JSON: UTF-8, string escapes, no raw
control characters in strings, numbers as RFC 8259 writes them, commas and colons where the grammar
has them, brackets matched) with a loop over tokens instead of recursion, and returns the top-level
array's elements as byte slices with their deepest nesting. Malformed JSON anywhere gives None, so the
batch is refused whole as before. A Python loop over every token: it runs only for a batch that the
parsers refused, and stops at the first token out of place.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    rb"(?P<ws>[ \t\n\r]+)"
    rb'|(?P<str>"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*")'
    rb"|(?P<num>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
    rb"|(?P<lit>true|false|null)"
    rb"|(?P<punct>[\[\]{}:,])"
)
_CLOSER = {ord("["): ord("]"), ord("{"): ord("}")}

#: What the parser expects next.
_VALUE, _VALUE_OR_CLOSE, _KEY, _KEY_OR_CLOSE, _COLON, _COMMA_OR_CLOSE, _END = range(7)


def array_items(body: bytes, *, max_tokens: int | None = None) -> list[tuple[bytes, int]] | None:
    """The elements of the JSON array ``body``, each with its deepest nesting (0 for a scalar), or
    None when ``body`` is not one well-formed JSON array, or has more than ``max_tokens`` tokens."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    items: list[tuple[bytes, int]] = []
    stack: list[int] = []
    state, pos, start, deepest, tokens = _VALUE, 0, 0, 0, 0
    end = len(body)
    while pos < end:
        match = _TOKEN.match(body, pos)
        tokens += 1
        if match is None or (max_tokens is not None and tokens > max_tokens):
            return None
        kind, pos = match.lastgroup, match.end()
        if kind == "ws":
            continue
        char = body[match.start()]
        if state in (_VALUE, _VALUE_OR_CLOSE) and kind != "punct":
            if not stack:
                return None  # (the body must be an array)
            state = _COMMA_OR_CLOSE
        elif state in (_VALUE, _VALUE_OR_CLOSE) and char in _CLOSER:
            if not stack and char != ord("["):
                return None  # (the body must be an array)
            stack.append(_CLOSER[char])
            if len(stack) == 1:
                start = pos
            deepest = max(deepest, len(stack) - 1)
            state = _VALUE_OR_CLOSE if char == ord("[") else _KEY_OR_CLOSE
        elif state in (_KEY, _KEY_OR_CLOSE) and kind == "str":
            state = _COLON
        elif state == _COLON and char == ord(":"):
            state = _VALUE
        elif state == _COMMA_OR_CLOSE and char == ord(","):
            if len(stack) == 1:
                items.append((body[start : match.start()], deepest))
                start, deepest = pos, 0
            state = _VALUE if stack[-1] == ord("]") else _KEY
        elif state in (_COMMA_OR_CLOSE, _VALUE_OR_CLOSE, _KEY_OR_CLOSE) and stack and char == stack[-1]:
            stack.pop()
            if not stack:
                if state == _COMMA_OR_CLOSE:  # (an empty array has no element)
                    items.append((body[start : match.start()], deepest))
                state = _END
            else:
                state = _COMMA_OR_CLOSE
        else:
            return None
    return items if state == _END else None
