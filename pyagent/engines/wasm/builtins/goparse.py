"""Go's ``time.Parse(layout, value)`` (what ``time.parse_ns`` calls), as Unix nanoseconds.

The layout is cut into elements exactly as for formatting (``goformat.next_element``); the value is
read element by element as Go's ``time.parse`` does, over bytes: one- or two-digit numbers where Go
takes them, month and day names in any case, ``AM``/``PM``, fractions after ``.`` or ``,``, numeric
offsets (up to 24 hours and 60 minutes, as Go allows), then the date is checked (day of month, day of
year). A zone abbreviation other than ``UTC`` (``MST``, ``CET``...) takes its offset from the zone of
the machine running OPA, which this engine cannot know: it raises :class:`UnsupportedBuiltinUse`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyagent.engines.wasm.builtins._operands import BuiltinError, UnsupportedBuiltinUse
from pyagent.engines.wasm.builtins.goformat import DAYS, MONTHS, next_element

__all__ = ["ParsedTime", "go_parse"]

_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365)
_OFFSET_SHAPES = {  # element (after its sign or Z) -> (length, colon positions, has minutes, has seconds)
    "07:00": (6, (3,), True, False),
    "07": (3, (), False, False),
    "07:00:00": (9, (3, 6), True, True),
    "070000": (7, (), True, True),
    "0700": (5, (), True, False),
}


@dataclass
class ParsedTime:
    """The fields Go's parser collects; ``offset`` in seconds east of UTC."""

    year: int = 0
    month: int = -1
    day: int = -1
    yday: int = -1
    hour: int = 0
    minute: int = 0
    second: int = 0
    nanosecond: int = 0
    offset: int = 0
    utc: bool = False  # a "Z" or "UTC" was read: the time is UTC whatever offset was also read


class _Bad(Exception):
    """Go's ``errBad`` (the element does not match) or a range error (``range_error`` set)."""

    def __init__(self, range_error: str = "") -> None:
        super().__init__(range_error)
        self.range_error = range_error


def _digit(s: bytes, i: int) -> bool:
    return i < len(s) and 48 <= s[i] <= 57


def _getnum(s: bytes, fixed: bool) -> tuple[int, bytes]:
    if not _digit(s, 0):
        raise _Bad
    if not _digit(s, 1):
        if fixed:
            raise _Bad
        return s[0] - 48, s[1:]
    return (s[0] - 48) * 10 + s[1] - 48, s[2:]


def _getnum3(s: bytes, fixed: bool) -> tuple[int, bytes]:
    i = 0
    while i < 3 and _digit(s, i):
        i += 1
    if i == 0 or (fixed and i != 3):
        raise _Bad
    return int(s[:i]), s[i:]


def _atoi(s: bytes) -> int:
    """Go's ``time.atoi``: an optional sign, then digits only (none reads as 0)."""
    negative = s[:1] == b"-"
    digits = s[1:] if s[:1] in (b"-", b"+") else s
    if not all(48 <= c <= 57 for c in digits) or (digits and int(digits) > 1 << 63):
        raise _Bad
    value = int(digits) if digits else 0
    return -value if negative else value


def _zone_like(value: bytes) -> bool:
    """Whether Go's ``parseTimeZone`` would read a zone name at the start of ``value``."""
    if len(value) < 3:
        return False
    if value[:4] in (b"ChST", b"MeST") or value[:3] == b"GMT" or value[:1] in (b"+", b"-"):
        return True
    upper = 0
    while upper < min(6, len(value)) and 65 <= value[upper] <= 90:
        upper += 1
    if upper == 5:
        return value[4] == ord("T")
    if upper == 4:
        return value[3] == ord("T") or value[:4] == b"WITA"
    return upper == 3


def _first_element(layout: str) -> str | None:
    for i in range(len(layout)):
        found = next_element(layout, i)
        if found is not None:
            return found[0]
    return None


def _lookup(names: tuple[str, ...], s: bytes) -> tuple[int, bytes]:
    for index, name in enumerate(names):
        size = len(name)
        if len(s) >= size and all(
            a == b or ((a | 32) == (b | 32) and 97 <= (a | 32) <= 122)
            for a, b in zip(s[:size], name.encode(), strict=True)
        ):
            return index, s[size:]
    raise _Bad


def _skip(value: bytes, prefix: bytes) -> bytes:
    while prefix:
        if prefix[:1] == b" ":
            if value and value[:1] != b" ":
                raise _Bad
            prefix, value = prefix.lstrip(b" "), value.lstrip(b" ")
            continue
        if not value or value[0] != prefix[0]:
            raise _Bad
        prefix, value = prefix[1:], value[1:]
    return value


def _nanoseconds(value: bytes, size: int) -> int:
    if value[:1] not in (b".", b","):
        raise _Bad
    size = min(size, 10)
    ns = _atoi(value[1:size])
    if ns < 0:
        raise _Bad("fractional second")
    scale: int = 10 ** (10 - size)
    return ns * scale


def _offset(value: bytes, shape: str) -> tuple[int, bytes]:
    size, colons, minutes, seconds = _OFFSET_SHAPES[shape]
    if len(value) < size or any(value[i] != ord(":") for i in colons):
        raise _Bad
    digits = value[1:size].replace(b":", b"")
    hours, _ = _getnum(digits[0:2], True)
    mins = _getnum(digits[2:4], True)[0] if minutes else 0
    secs = _getnum(digits[4:6], True)[0] if seconds else 0
    for amount, limit, name in ((hours, 24, "hour"), (mins, 60, "minute"), (secs, 60, "second")):
        if amount > limit:
            raise _Bad(f"time zone offset {name}")
    if value[:1] not in (b"+", b"-"):
        raise _Bad
    offset = (hours * 60 + mins) * 60 + secs
    return (-offset if value[:1] == b"-" else offset), value[size:]


def _element(t: ParsedTime, element: str, value: bytes, rest_of_layout: str) -> bytes:
    """Read one layout element from ``value`` into ``t``; returns what is left of the value."""
    if element == "06":
        if len(value) < 2:
            raise _Bad
        t.year = _atoi(value[:2])
        t.year += 1900 if t.year >= 69 else 2000
        return value[2:]
    if element == "2006":
        if len(value) < 4 or not _digit(value, 0):
            raise _Bad
        t.year = _atoi(value[:4])
        return value[4:]
    if element in ("Jan", "January"):
        index, value = _lookup(tuple(m[:3] if element == "Jan" else m for m in MONTHS), value)
        t.month = index + 1
        return value
    if element in ("1", "01"):
        t.month, value = _getnum(value, element == "01")
        if not 1 <= t.month <= 12:
            raise _Bad("month")
        return value
    if element in ("Mon", "Monday"):
        return _lookup(tuple(d[:3] if element == "Mon" else d for d in DAYS), value)[1]
    if element in ("2", "_2", "02"):
        if element == "_2" and value[:1] == b" ":
            value = value[1:]
        t.day, value = _getnum(value, element == "02")
        return value
    if element in ("__2", "002"):
        for _ in range(2):
            if element == "__2" and value[:1] == b" ":
                value = value[1:]
        t.yday, value = _getnum3(value, element == "002")
        return value
    if element in ("15", "3", "03"):
        t.hour, value = _getnum(value, element == "03")
        if t.hour >= (24 if element == "15" else 13):
            raise _Bad("hour")
        return value
    if element in ("4", "04"):
        t.minute, value = _getnum(value, element == "04")
        if t.minute >= 60:
            raise _Bad("minute")
        return value
    if element in ("5", "05"):
        t.second, value = _getnum(value, element == "05")
        if t.second >= 60:
            raise _Bad("second")
        if len(value) >= 2 and value[:1] in (b".", b",") and _digit(value, 1):
            following = _first_element(rest_of_layout)
            if following is None or following[0] not in ".,":
                n = 2
                while _digit(value, n):
                    n += 1
                t.nanosecond, value = _nanoseconds(value, n), value[n:]
        return value
    if element[0] == "Z" and value[:1] == b"Z":
        t.utc = True
        return value[1:]
    if element[0] in "Z-":
        t.offset, value = _offset(value, element[1:])
        return value
    if element == "MST":
        if value[:3] == b"UTC":
            t.utc = True
            return value[3:]
        if _zone_like(value):
            raise UnsupportedBuiltinUse("a zone abbreviation other than UTC (its offset is the OPA host's)")
        raise _Bad
    if element[1] == "0":  # ".000": exactly that many digits
        if len(value) < len(element):
            raise _Bad
        t.nanosecond = _nanoseconds(value, len(element))
        return value[len(element) :]
    if len(value) < 2 or value[:1] not in (b".", b",") or not _digit(value, 1):
        return value  # ".999": the fraction may be left out
    n = 1
    while n + 1 < len(value) and _digit(value, n + 1):
        n += 1
    t.nanosecond = _nanoseconds(value, n + 1)
    return value[n + 1 :]


def go_parse(layout: str, text: str) -> ParsedTime:
    """Go's ``time.parse``: the fields of ``text`` read with ``layout`` (date checked), or
    ``BuiltinError`` with Go's message."""
    t, value, rest, pm, am = ParsedTime(), text.encode("utf-8", "surrogatepass"), layout, False, False
    bad = f'parsing time "{text}" as "{layout}"'
    while True:
        i = 0
        found = None
        while i < len(rest) and (found := next_element(rest, i)) is None:
            i += 1
        try:
            value = _skip(value, rest[:i].encode("utf-8", "surrogatepass"))
        except _Bad:
            raise BuiltinError(f"{bad}: cannot parse the text around {rest[:i]!r}") from None
        if found is None:
            if value:
                raise BuiltinError(f"{bad}: extra text: {value.decode('utf-8', 'replace')!r}")
            break
        element, length = found
        rest = rest[i + length :]
        if element in ("PM", "pm"):
            pm, am = pm or value[:2].upper() == b"PM", am or value[:2].upper() == b"AM"
        try:
            value = _am_pm(value, element) if element in ("PM", "pm") else _element(t, element, value, rest)
        except _Bad as err:
            reason = f"{err.range_error} out of range" if err.range_error else f"cannot parse as {element!r}"
            raise BuiltinError(f"{bad}: {reason}") from None
    if pm and t.hour < 12:
        t.hour += 12
    elif am and t.hour == 12:
        t.hour = 0
    _settle_date(t, bad)
    return t


def _am_pm(value: bytes, element: str) -> bytes:
    words = (b"PM", b"AM") if element == "PM" else (b"pm", b"am")
    if value[:2] not in words:
        raise _Bad
    return value[2:]


def _settle_date(t: ParsedTime, bad: str) -> None:
    leap = t.year % 4 == 0 and (t.year % 100 != 0 or t.year % 400 == 0)
    if t.yday >= 0:
        yday, month, day = t.yday, 0, 0
        if leap:
            if yday == 60:
                month, day = 2, 29
            elif yday > 60:
                yday -= 1
        if not 1 <= yday <= 365:
            raise BuiltinError(f"{bad}: day-of-year out of range")
        if month == 0:
            month = (yday - 1) // 31 + 1
            if _DAYS_BEFORE[month] < yday:
                month += 1
            day = yday - _DAYS_BEFORE[month - 1]
        if t.month >= 0 and t.month != month:
            raise BuiltinError(f"{bad}: day-of-year does not match month")
        if t.day >= 0 and t.day != day:
            raise BuiltinError(f"{bad}: day-of-year does not match day")
        t.month, t.day = month, day
    t.month = 1 if t.month < 0 else t.month
    t.day = 1 if t.day < 0 else t.day
    days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[t.month - 1]
    if not 1 <= t.day <= days:
        raise BuiltinError(f"{bad}: day out of range")
