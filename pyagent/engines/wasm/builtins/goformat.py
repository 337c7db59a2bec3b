"""Go's ``Time.Format`` layout language, for an instant in UTC (what ``time.format`` needs).

A layout is cut into literal text and the reference-time elements Go recognises (``2006``, ``Jan``,
``15``, ``.000``, ``Z07:00``...), scanned left to right exactly as Go's ``nextStdChunk`` does; OPA
also accepts the names of some of Go's layout constants (``RFC822``...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DAYS", "MONTHS", "GoTime", "format_layout", "named_layout", "next_element"]

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_NAMED = {
    "ANSIC": "Mon Jan _2 15:04:05 2006",
    "UnixDate": "Mon Jan _2 15:04:05 MST 2006",
    "RubyDate": "Mon Jan 02 15:04:05 -0700 2006",
    "RFC822": "02 Jan 06 15:04 MST",
    "RFC822Z": "02 Jan 06 15:04 -0700",
    "RFC850": "Monday, 02-Jan-06 15:04:05 MST",
    "RFC1123": "Mon, 02 Jan 2006 15:04:05 MST",
    "RFC1123Z": "Mon, 02 Jan 2006 15:04:05 -0700",
    "RFC3339": "2006-01-02T15:04:05Z07:00",
    "RFC3339Nano": "2006-01-02T15:04:05.999999999Z07:00",
}


@dataclass(frozen=True)
class GoTime:
    """The fields of one UTC instant that a layout can show."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    nanosecond: int
    weekday: int  # 0 = Sunday
    yearday: int  # 1-based


def named_layout(layout: str) -> str:
    """OPA's layout names (``"RFC822"``...) replaced by the layout; any other text is the layout."""
    return _NAMED.get(layout, layout)


_Element = Callable[[GoTime], str]


def _pad(width: int) -> Callable[[Callable[[GoTime], int]], _Element]:
    return lambda field: lambda t: str(field(t)).zfill(width)


def _hour12(t: GoTime) -> int:
    return t.hour % 12 or 12


_ELEMENTS: dict[str, _Element] = {
    "January": lambda t: MONTHS[t.month - 1],
    "Jan": lambda t: MONTHS[t.month - 1][:3],
    "Monday": lambda t: DAYS[t.weekday],
    "Mon": lambda t: DAYS[t.weekday][:3],
    "MST": lambda t: "UTC",
    "01": _pad(2)(lambda t: t.month),
    "02": _pad(2)(lambda t: t.day),
    "03": _pad(2)(_hour12),
    "04": _pad(2)(lambda t: t.minute),
    "05": _pad(2)(lambda t: t.second),
    "06": _pad(2)(lambda t: t.year % 100),
    "002": _pad(3)(lambda t: t.yearday),
    "15": _pad(2)(lambda t: t.hour),
    "1": lambda t: str(t.month),
    "2006": _pad(4)(lambda t: t.year),
    "2": lambda t: str(t.day),
    "_2": lambda t: str(t.day).rjust(2),
    "__2": lambda t: str(t.yearday).rjust(3),
    "3": lambda t: str(_hour12(t)),
    "4": lambda t: str(t.minute),
    "5": lambda t: str(t.second),
    "PM": lambda t: "PM" if t.hour >= 12 else "AM",
    "pm": lambda t: "pm" if t.hour >= 12 else "am",
}
_NUMERIC_ZONES = ("-070000", "-07:00:00", "-0700", "-07:00", "-07")
_UTC_OFFSETS = {
    "-070000": "+000000",
    "-07:00:00": "+00:00:00",
    "-0700": "+0000",
    "-07:00": "+00:00",
    "-07": "+00",
}


def _is_lower(text: str, i: int) -> bool:
    return i < len(text) and "a" <= text[i] <= "z"


def next_element(layout: str, i: int) -> tuple[str, int] | None:
    """The element starting at ``layout[i]`` and its length (Go's ``nextStdChunk``), or None."""
    c, rest = layout[i], layout[i:]
    if c == "J" and rest.startswith("Jan"):
        if rest.startswith("January"):
            return "January", 7
        return None if _is_lower(layout, i + 3) else ("Jan", 3)
    if c == "M":
        if rest.startswith("Mon"):
            if rest.startswith("Monday"):
                return "Monday", 6
            if not _is_lower(layout, i + 3):
                return "Mon", 3
        return ("MST", 3) if rest.startswith("MST") else None
    if c == "0":
        if len(rest) >= 2 and "1" <= rest[1] <= "6":
            return rest[:2], 2
        return ("002", 3) if rest.startswith("002") else None
    if c == "1":
        return ("15", 2) if rest.startswith("15") else ("1", 1)
    if c == "2":
        return ("2006", 4) if rest.startswith("2006") else ("2", 1)
    if c == "_":
        if rest.startswith("_2"):
            return ("_2", 2) if not rest.startswith("_2006") else None  # "_" is literal before 2006
        return ("__2", 3) if rest.startswith("__2") else None
    if c in "345":
        return c, 1
    if rest.startswith(("PM", "pm")):
        return rest[:2], 2
    if c in "-Z":
        for zone in _NUMERIC_ZONES:
            name = c + zone[1:]
            if rest.startswith(name):
                return name, len(name)
        return None
    if c in ".," and len(rest) >= 2 and rest[1] in "09":
        j = 1
        while j < len(rest) and rest[j] == rest[1]:
            j += 1
        if j == len(rest) or not rest[j].isascii() or not rest[j].isdigit():
            return rest[:j], j
    return None


def _fraction(element: str, nanosecond: int) -> str:
    digits = min(len(element) - 1, 9)
    text = str(nanosecond).zfill(9)[:digits]
    if element[1] == "9":
        text = text.rstrip("0")
        return element[0] + text if text else ""
    return element[0] + text


def format_layout(t: GoTime, layout: str) -> str:
    """``t`` laid out as Go's ``Time.Format(layout)`` does, in UTC."""
    out: list[str] = []
    literal_start = i = 0
    while i < len(layout):
        found = next_element(layout, i)
        if found is None:
            i += 1
            continue
        element, length = found
        out.append(layout[literal_start:i])
        if element[0] in ".,":
            out.append(_fraction(element, t.nanosecond))
        elif element[0] == "Z":
            out.append("Z")
        elif element[0] == "-":
            out.append(_UTC_OFFSETS[element])
        else:
            out.append(_ELEMENTS[element](t))
        i += length
        literal_start = i
    out.append(layout[literal_start:])
    return "".join(out)
