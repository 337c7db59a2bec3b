"""Decode the Rego values an OPA wasm module returns into the JSON that OPA itself would answer.

``opa_eval`` can serialise its result as JSON, but JSON loses what makes OPA's answers deterministic:
sets come out as arrays in hash order, and objects with non-string keys as strings in hash order. So
the runtime asks for the "value" format (Rego syntax: set literals, ``set()``, non-string keys) and this
module converts it exactly as OPA's ``ast.JSON`` does: a set becomes the array of its elements in OPA's
value order (null < booleans < numbers < strings < arrays < objects < sets), a non-string key becomes
its compact JSON text (Go's encoder: HTML characters escaped), and object keys come out sorted.

The common case (plain JSON: string keys, no sets) is parsed by ``json`` at C speed; only results
holding a set or a non-string key go through the small parser below.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from functools import cmp_to_key
from operator import itemgetter
from typing import Any

__all__ = [
    "RegoNumber",
    "RegoValueError",
    "decode_result_set",
    "decode_value",
    "parse_rego",
    "print_lines",
    "rego_text",
]

_RESULT_PREFIX = b'{{"result": '
_RESULT_SUFFIX = b"}}"
_EMPTY_SET = b"set()"
_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)'
    r"|(?P<lit>null|true|false|set\(\))|(?P<punct>[\[\]{}:,]))"
)
_GO_HTML = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)
_LITERALS: dict[str, Any] = {"null": None, "true": True, "false": False}


class RegoValueError(ValueError):
    """The module's output is not a well-formed Rego value."""


class _Number:
    __slots__ = ("text", "value")

    def __init__(self, text: str) -> None:
        self.text = text
        self.value: int | Decimal = int(text) if text.lstrip("-").isdigit() else Decimal(text)


RegoNumber = _Number
"""A number as the module wrote it: ``.text``, and ``.value`` (int or Decimal)."""


class _Set:
    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items


class _Object:
    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[Any, Any]]) -> None:
        self.pairs = pairs


def _sorted_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return dict(sorted(pairs, key=itemgetter(0)))


def decode_result_set(text: bytes) -> tuple[bool, Any]:
    """``(True, value)`` for a result set ``{{"result": value}}``; ``(False, None)`` when it is empty."""
    if text == _EMPTY_SET:
        return False, None
    if not (text.startswith(_RESULT_PREFIX) and text.endswith(_RESULT_SUFFIX)):
        raise RegoValueError(f"not a result set of one value: {text[:120]!r}")
    return True, decode_value(text[len(_RESULT_PREFIX) : -len(_RESULT_SUFFIX)])


def decode_value(text: bytes, *, decimals: bool = False) -> Any:
    """One Rego value (``opa_value_dump`` text) as OPA's JSON; non-integers as ``Decimal`` if asked."""
    try:
        return json.loads(text, object_pairs_hook=_sorted_object, parse_float=Decimal if decimals else float)
    except ValueError:
        pass  # a set or a non-string key: Rego syntax, not JSON; parsed exactly below
    return _to_json(_Parser(text.decode("utf-8")).parse(), decimals)


def parse_rego(text: bytes) -> Any:
    """One Rego value as parsed: numbers as :class:`RegoNumber` (their text kept), sets and objects
    as opaque values for :func:`rego_text`, arrays as lists, strings, booleans and null as in JSON."""
    return _Parser(text.decode("utf-8")).parse()


def rego_text(value: Any) -> str:
    """OPA's ``ast.Value.String()`` of a value from :func:`parse_rego`."""
    return _rego_text(value)


def print_lines(operands: bytes) -> list[str]:
    """What OPA's ``internal.print`` emits for its operand: an array holding, for each printed
    expression, the set of its values (empty when undefined). One line per combination of values."""
    parsed = _Parser(operands.decode("utf-8")).parse()
    if not isinstance(parsed, list) or not all(isinstance(item, _Set) for item in parsed):
        raise RegoValueError("internal.print expects an array of sets")
    lines = [""]
    for position, values in enumerate(parsed):
        texts = [_print_text(v) for v in _sorted(values.items)] or ["<undefined>"]
        lines = [line + (" " if position else "") + text for line in lines for text in texts]
    return lines


def _print_text(value: Any) -> str:
    return value if isinstance(value, str) else _rego_text(value)


def _rego_text(value: Any) -> str:
    """OPA's ``ast.Value.String()``: Rego syntax, sets and object keys in OPA's order."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _Number):
        return value.text
    if isinstance(value, str):
        return _go_quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(_rego_text(item) for item in value) + "]"
    if isinstance(value, _Set):
        return (
            "{" + ", ".join(_rego_text(item) for item in _sorted(value.items)) + "}"
            if value.items
            else "set()"
        )
    return "{" + ", ".join(f"{_rego_text(k)}: {_rego_text(v)}" for k, v in _sorted_pairs(value)) + "}"


_GO_SHORT_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _go_quote(text: str) -> str:
    """Go's ``strconv.Quote``."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in _GO_SHORT_ESCAPES:
            out.append(_GO_SHORT_ESCAPES[char])
        elif char == " " or (char.isprintable() and code != 0x7F):
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = [(m.lastgroup, m.group(m.lastgroup or 0)) for m in _scan(text)]
        self.pos = 0

    def parse(self) -> Any:
        value = self._value()
        if self.pos != len(self.tokens):
            raise RegoValueError("trailing text after the value")
        return value

    def _next(self) -> tuple[str | None, str]:
        if self.pos >= len(self.tokens):
            raise RegoValueError("value ends early")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _peek(self) -> str:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else ""

    def _value(self) -> Any:
        kind, text = self._next()
        if kind == "str":
            return json.loads(text)
        if kind == "num":
            return _Number(text)
        if kind == "lit":
            return _Set([]) if text == "set()" else _LITERALS[text]
        if text == "[":
            return self._items("]")
        if text == "{":
            if self._peek() == "}":
                self.pos += 1
                return _Object([])
            first = self._value()
            if self._peek() == ":":
                self.pos += 1
                pairs = [(first, self._value())]
                while self._separator("}"):
                    key = self._value()
                    if self._next()[1] != ":":
                        raise RegoValueError("object member without ':'")
                    pairs.append((key, self._value()))
                return _Object(pairs)
            items = [first]
            while self._separator("}"):
                items.append(self._value())
            return _Set(items)
        raise RegoValueError(f"unexpected {text!r}")

    def _items(self, close: str) -> list[Any]:
        items: list[Any] = []
        if self._peek() == close:
            self.pos += 1
            return items
        items.append(self._value())
        while self._separator(close):
            items.append(self._value())
        return items

    def _separator(self, close: str) -> bool:
        """True after a ``,``; False after the closing bracket."""
        text = self._next()[1]
        if text == ",":
            return True
        if text == close:
            return False
        raise RegoValueError(f"expected ',' or {close!r}, got {text!r}")


def _scan(text: str) -> list[re.Match[str]]:
    matches, pos = [], 0
    end = len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None:
            raise RegoValueError(f"unexpected text at {pos}: {text[pos : pos + 20]!r}")
        matches.append(match)
        pos = match.end()
    return matches


def _rank(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return 1
    for rank, kind in ((2, _Number), (3, str), (4, list), (5, _Object), (6, _Set)):
        if isinstance(value, kind):
            return rank
    raise RegoValueError(f"not a Rego value: {value!r}")


def _compare(a: Any, b: Any) -> int:
    """OPA's ``ast.Compare`` on parsed values."""
    rank_a, rank_b = _rank(a), _rank(b)
    if rank_a != rank_b:
        return -1 if rank_a < rank_b else 1
    if rank_a == 0:
        return 0
    if rank_a in (1, 3):
        return int(a > b) - int(a < b)
    if rank_a == 2:
        return int(a.value > b.value) - int(a.value < b.value)
    if rank_a == 4:
        return _compare_sequences(a, b)
    if rank_a == 6:
        return _compare_sequences(_sorted(a.items), _sorted(b.items))
    keys_a, keys_b = _sorted_pairs(a), _sorted_pairs(b)
    for (key_a, val_a), (key_b, val_b) in zip(keys_a, keys_b, strict=False):
        result = _compare(key_a, key_b) or _compare(val_a, val_b)
        if result:
            return result
    return (len(keys_a) > len(keys_b)) - (len(keys_a) < len(keys_b))


def _compare_sequences(a: list[Any], b: list[Any]) -> int:
    for item_a, item_b in zip(a, b, strict=False):
        result = _compare(item_a, item_b)
        if result:
            return result
    return (len(a) > len(b)) - (len(a) < len(b))


def _sorted(items: list[Any]) -> list[Any]:
    return sorted(items, key=cmp_to_key(_compare))


def _compare_keys(p: tuple[Any, Any], q: tuple[Any, Any]) -> int:
    return _compare(p[0], q[0])


def _sorted_pairs(obj: _Object) -> list[tuple[Any, Any]]:
    return sorted(obj.pairs, key=cmp_to_key(_compare_keys))


def _to_json(value: Any, decimals: bool = False) -> Any:
    """OPA's ``ast.JSON``: sets to sorted arrays, non-string keys to their compact JSON text."""
    if isinstance(value, _Number):
        if isinstance(value.value, int):
            return value.value
        return value.value if decimals else float(value.text)
    if isinstance(value, list):
        return [_to_json(item, decimals) for item in value]
    if isinstance(value, _Set):
        return [_to_json(item, decimals) for item in _sorted(value.items)]
    if isinstance(value, _Object):
        pairs = [(k if isinstance(k, str) else _go_json(k), _to_json(v, decimals)) for k, v in value.pairs]
        return _sorted_object(pairs)
    return value


def _go_json(value: Any) -> str:
    """Go's ``json.Encoder`` output (HTML-escaped, no spaces, sorted keys) of a converted value."""
    if isinstance(value, _Number):
        return value.text
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).translate(_GO_HTML)
    if isinstance(value, list):
        return "[" + ",".join(_go_json(item) for item in value) + "]"
    if isinstance(value, _Set):
        return _go_json(_sorted(value.items))
    if isinstance(value, _Object):
        members = sorted(
            ((k if isinstance(k, str) else _go_json(k), v) for k, v in value.pairs), key=itemgetter(0)
        )
        return "{" + ",".join(f"{_go_json(k)}:{_go_json(v)}" for k, v in members) + "}"
    return json.dumps(value)
