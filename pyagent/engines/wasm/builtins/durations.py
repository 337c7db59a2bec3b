"""``time.parse_duration_ns``: Go's ``time.ParseDuration``, and OPA's day, week and year units.

OPA 1.22 reads a duration holding a ``d``, ``w`` or ``y`` with its own grammar (an optional sign, then
segments of ``[0-9.]+`` and a unit: ``ms``, ``us``, ``µs``, ``ns`` or one lowercase letter), rewrites
those units into hours (1d = 24h, 1w = 168h, 1y = 8760h; a float64 product, so ``1.515w`` is
254.51999999999998h) and hands the result to Go's parser; a string the grammar or Go refuses is then
``time: invalid duration "<text>"``. A string with none of those letters goes to Go's parser as it
is, with Go's own messages.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from pyagent.engines.wasm.builtins._operands import BuiltinError, string_operand

__all__ = ["go_parse_duration", "parse_duration_ns"]

_UNITS = {
    b"ns": 1,
    b"us": 1_000,
    "µs".encode(): 1_000,  # U+00B5 micro sign
    "μs".encode(): 1_000,  # U+03BC Greek mu
    b"ms": 1_000_000,
    b"s": 1_000_000_000,
    b"m": 60_000_000_000,
    b"h": 3_600_000_000_000,
}
_LIMIT = 1 << 63
_HOURS = {"d": 24, "w": 168, "y": 8760}
_OPA_GRAMMAR = re.compile(r"([-+]?)((?:[0-9.]+(?:ms|us|µs|ns|[a-z]))+)\Z")
_SEGMENT = re.compile(r"([0-9.]+)(ms|us|µs|ns|[a-z])")


def _quote(text: str) -> str:
    """Go's ``time.quote``: non-ASCII and control bytes as ``\\xNN``."""
    out = []
    for byte in text.encode("utf-8", "surrogatepass"):
        if byte < 0x20 or byte >= 0x80:
            out.append(f"\\x{byte:02x}")
        else:
            out.append(("\\" if byte in b'"\\' else "") + chr(byte))
    return '"' + "".join(out) + '"'


def _leading_int(s: bytes) -> tuple[int, bytes]:
    i, x = 0, 0
    while i < len(s) and 48 <= s[i] <= 57:
        if x > _LIMIT // 10:
            raise OverflowError
        x = x * 10 + s[i] - 48
        if x > _LIMIT:
            raise OverflowError
        i += 1
    return x, s[i:]


def _leading_fraction(s: bytes) -> tuple[int, float, bytes]:
    i, x, scale, overflow = 0, 0, 1.0, False
    while i < len(s) and 48 <= s[i] <= 57:
        if not overflow:
            if x > (_LIMIT - 1) // 10:
                overflow = True
            else:
                y = x * 10 + s[i] - 48
                if y > _LIMIT:
                    overflow = True
                else:
                    x, scale = y, scale * 10
        i += 1
    return x, scale, s[i:]


def go_parse_duration(text: str) -> int:
    """Go's ``time.ParseDuration(text)`` in nanoseconds; ``BuiltinError`` with Go's message."""
    invalid = BuiltinError(f"time: invalid duration {_quote(text)}")
    s = text.encode("utf-8", "surrogatepass")
    neg = s[:1] == b"-"
    if s[:1] in (b"-", b"+"):
        s = s[1:]
    if s == b"0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not (s[0] == 46 or 48 <= s[0] <= 57):
            raise invalid
        before = len(s)
        try:
            value, s = _leading_int(s)
        except OverflowError:
            raise invalid from None
        pre, post, fraction, scale = before != len(s), False, 0, 1.0
        if s[:1] == b".":
            s = s[1:]
            before = len(s)
            fraction, scale, s = _leading_fraction(s)
            post = before != len(s)
        if not pre and not post:
            raise invalid
        i = 0
        while i < len(s) and not (s[i] == 46 or 48 <= s[i] <= 57):
            i += 1
        if i == 0:
            raise BuiltinError(f"time: missing unit in duration {_quote(text)}")
        unit_text, s = s[:i], s[i:]
        unit = _UNITS.get(unit_text)
        if unit is None:
            name = _quote(unit_text.decode("utf-8", "replace"))
            raise BuiltinError(f"time: unknown unit {name} in duration {_quote(text)}")
        if value > _LIMIT // unit:
            raise invalid
        value *= unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))
            if value > _LIMIT:
                raise invalid
        total += value
        if total > _LIMIT:
            raise invalid
    if neg:
        return -total
    if total > _LIMIT - 1:
        raise invalid
    return total


def _in_hours(digits: str, hours: int) -> str:
    """``digits`` days, weeks or years in hours as OPA writes them: the float64 product, in Go's
    shortest fixed-point form (``strconv.FormatFloat(x, 'f', -1, 64)``)."""
    try:
        product = float(digits) * hours
    except ValueError:
        return digits  # not a number: Go's parser refuses it below
    if not math.isfinite(product):
        return digits + "!"  # no number Go's parser takes
    return format(Decimal(repr(product)), "f")


def parse_duration_ns(value: object) -> int:
    """``time.parse_duration_ns(s)``: nanoseconds, Go's units plus OPA's ``d``, ``w`` and ``y``."""
    text = string_operand(value, 1)
    if not any(unit in text for unit in _HOURS):
        return go_parse_duration(text)
    invalid = BuiltinError(f"time: invalid duration {_quote(text)}")
    match = _OPA_GRAMMAR.match(text)
    if match is None:
        raise invalid
    rewritten = match.group(1) + "".join(
        _in_hours(digits, _HOURS[unit]) + "h" if unit in _HOURS else digits + unit
        for digits, unit in _SEGMENT.findall(match.group(2))
    )
    try:
        return go_parse_duration(rewritten)
    except BuiltinError:
        raise invalid from None
