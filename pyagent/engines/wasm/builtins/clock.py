"""The ``time.*`` host built-ins, in UTC, mirroring Go's ``time`` package as ``topdown/time.go`` uses it.

- ``time.parse_rfc3339_ns``: Go's ``time.Parse(time.RFC3339, s)`` (including its lenient fallback
  parser: one-digit hours, ``,`` as the fraction separator, offsets up to ``+24:00``/``:60``, more than
  nine fraction digits truncated) and OPA's check that the instant fits int64 nanoseconds.
- ``time.date``, ``time.clock``, ``time.weekday``, ``time.add_date``, ``time.format``: for a time given
  as nanoseconds, or as ``[ns]``/``[ns, tz]``/``[ns, tz, layout]`` with ``tz`` of ``""`` or ``"UTC"``.
  Another zone raises :class:`UnsupportedBuiltinUse` (the evaluation fails loudly rather than answer
  differently from OPA). ``time.format`` lays out with Go's layout language (``goformat.py``).
"""

from __future__ import annotations

from decimal import Decimal

from pyagent.engines.wasm.builtins._operands import (
    INT64_MAX,
    INT64_MIN,
    BuiltinError,
    UnsupportedBuiltinUse,
    int_operand,
    string_operand,
    type_name,
)

__all__ = ["add_date", "clock", "date", "format_time", "parse_ns", "parse_rfc3339_ns", "weekday"]

_NS_PER_SECOND = 1_000_000_000
_SECONDS_PER_DAY = 86_400
_RFC3339 = "2006-01-02T15:04:05Z07:00"
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


# --------------------------------------------------------------------------- calendar arithmetic


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in(month: int, year: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year, month 1..12, any day offset)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Inverse of :func:`_days_from_civil`: (year, month, day)."""
    days += 719_468
    era = days // 146_097
    doe = days - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _checked_ns(ns: int) -> int:
    """OPA's ``toSafeUnixNano``: the instant must fit int64 nanoseconds."""
    if not INT64_MIN <= ns <= INT64_MAX:
        raise BuiltinError("time outside of valid range")
    return ns


# --------------------------------------------------------------------------- operands


def _time_operand(value: object) -> int:
    return _time_and_layout(value)[0]


def _time_and_layout(value: object) -> tuple[int, str]:
    """OPA's ``tzTime`` for UTC: nanoseconds, or ``[ns]``/``[ns, tz]``/``[ns, tz, layout]``."""
    layout = ""
    expected = "either number (ns) or [number (ns), string (tz)]"
    ns_value = value
    if isinstance(value, list):
        if not value:
            raise BuiltinError(f"operand 1 must be {expected} but got array")
        ns_value = value[0]
        if len(value) > 1:
            zone = string_operand(value[1], 1)
            if zone not in ("", "UTC"):
                raise UnsupportedBuiltinUse(f"time zone {zone!r} (only UTC is supported by this engine)")
        if len(value) > 2:
            layout = string_operand(value[2], 1)
    elif isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise BuiltinError(f"operand 1 must be {expected} but got {type_name(value)}")
    if isinstance(ns_value, bool) or not isinstance(ns_value, int | float | Decimal):
        raise BuiltinError(f"operand 1 must be number but got {type_name(ns_value)}")
    if isinstance(ns_value, int):
        ns = ns_value
    else:
        exact = Decimal(ns_value)
        if exact != exact.to_integral_value():
            raise BuiltinError("timestamp too big")
        ns = int(exact)
    if not INT64_MIN <= ns <= INT64_MAX:
        raise BuiltinError("timestamp too big")
    return ns, layout


# --------------------------------------------------------------------------- time.parse_rfc3339_ns


def _is_digit(s: bytes, i: int) -> bool:
    return i < len(s) and 48 <= s[i] <= 57


class _Unparsable(Exception):
    """The remaining text cannot be read as the layout element ``elem``."""

    def __init__(self, rest: bytes, elem: str) -> None:
        super().__init__(elem)
        self.rest = rest
        self.elem = elem


def _getnum(s: bytes, fixed: bool, elem: str) -> tuple[int, bytes]:
    """Go's ``getnum``: one or two leading digits (exactly two when ``fixed``)."""
    if not _is_digit(s, 0) or (fixed and not _is_digit(s, 1)):
        raise _Unparsable(s, elem)
    if not _is_digit(s, 1):
        return s[0] - 48, s[1:]
    return (s[0] - 48) * 10 + s[1] - 48, s[2:]


def _skip(s: bytes, literal: bytes) -> bytes:
    if not s.startswith(literal):
        raise _Unparsable(s, literal.decode())
    return s[len(literal) :]


def _parse_fields(s: bytes) -> tuple[int, int, int, int, int, int, int, int, str]:
    """Go's general ``time.parse`` walking the RFC 3339 layout; the last item names a range error."""
    if len(s) < 4 or not all(48 <= c <= 57 for c in s[:4]):
        raise _Unparsable(s, "2006")
    year, s = int(s[:4]), _skip(s[4:], b"-")
    month, s = _getnum(s, True, "01")
    if not 1 <= month <= 12:
        return 0, 0, 0, 0, 0, 0, 0, 0, "month"
    day, s = _getnum(_skip(s, b"-"), True, "02")
    hour, s = _getnum(_skip(s, b"T"), False, "15")
    if hour >= 24:
        return 0, 0, 0, 0, 0, 0, 0, 0, "hour"
    minute, s = _getnum(_skip(s, b":"), True, "04")
    if minute >= 60:
        return 0, 0, 0, 0, 0, 0, 0, 0, "minute"
    second, s = _getnum(_skip(s, b":"), True, "05")
    if second >= 60:
        return 0, 0, 0, 0, 0, 0, 0, 0, "second"
    nsec = 0
    if len(s) >= 2 and s[0] in b".," and _is_digit(s, 1):
        n = 2
        while _is_digit(s, n):
            n += 1
        digits = s[1 : min(n, 10)]  # more than nine digits are truncated
        nsec, s = int(digits) * 10 ** (9 - len(digits)), s[n:]
    offset = 0
    if s[:1] == b"Z":
        s = s[1:]
    else:
        if len(s) < 6 or s[3] != ord(":"):
            raise _Unparsable(s, "Z07:00")
        off_hour, _ = _getnum(s[1:3], True, "Z07:00")
        off_min, _ = _getnum(s[4:6], True, "Z07:00")
        if off_hour > 24 or off_min > 60:  # Go allows +24:00 and :60 here
            return 0, 0, 0, 0, 0, 0, 0, 0, "time zone offset"
        if s[0] not in b"+-":
            raise _Unparsable(s, "Z07:00")
        offset = (off_hour * 60 + off_min) * 60 * (1 if s[0] == ord("+") else -1)
        s = s[6:]
    if s:
        raise _Unparsable(s, "")
    return year, month, day, hour, minute, second, nsec, offset, ""


def _go_parse_rfc3339(value: str) -> int:
    """Go's ``time.Parse(time.RFC3339, value)`` as Unix nanoseconds (range unchecked)."""
    bad = f'parsing time "{value}" as "{_RFC3339}"'
    try:
        year, month, day, hour, minute, second, nsec, offset, range_error = _parse_fields(
            value.encode("utf-8", "surrogatepass")
        )
    except _Unparsable as err:
        rest = err.rest.decode("utf-8", "replace")
        if not err.elem:
            raise BuiltinError(f'{bad}: extra text: "{rest}"') from err
        raise BuiltinError(f'{bad}: cannot parse "{rest}" as "{err.elem}"') from err
    if range_error:
        raise BuiltinError(f"{bad}: {range_error} out of range")
    if not 1 <= day <= _days_in(month, year):
        raise BuiltinError(f"{bad}: day out of range")
    seconds = _days_from_civil(year, month, day) * _SECONDS_PER_DAY + hour * 3600 + minute * 60 + second
    return (seconds - offset) * _NS_PER_SECOND + nsec


def parse_rfc3339_ns(value: object) -> int:
    """``time.parse_rfc3339_ns(value)``: nanoseconds since the Unix epoch."""
    return _checked_ns(_go_parse_rfc3339(string_operand(value, 1)))


# --------------------------------------------------------------------------- calendar built-ins


def _split(ns: int) -> tuple[int, int]:
    """(days since epoch, nanoseconds into that day), flooring like Go's absolute time."""
    return divmod(ns, _SECONDS_PER_DAY * _NS_PER_SECOND)


def date(value: object) -> list[int]:
    """``time.date(x)``: ``[year, month, day]`` in UTC."""
    days, _ = _split(_time_operand(value))
    return list(_civil_from_days(days))


def clock(value: object) -> list[int]:
    """``time.clock(x)``: ``[hour, minute, second]`` in UTC."""
    _, in_day = _split(_time_operand(value))
    seconds = in_day // _NS_PER_SECOND
    return [seconds // 3600, seconds % 3600 // 60, seconds % 60]


def weekday(value: object) -> str:
    """``time.weekday(x)``: the English day name in UTC."""
    days, _ = _split(_time_operand(value))
    return _WEEKDAYS[(days + 4) % 7]  # 1970-01-01 was a Thursday


def add_date(value: object, years: object, months: object, days: object) -> int:
    """``time.add_date(x, years, months, days)``: Go's ``Time.AddDate`` (with its normalisation) in UTC."""
    ns = _time_operand(value)
    add_years, add_months, add_days = (int_operand(v, i) for v, i in ((years, 2), (months, 3), (days, 4)))
    day_index, in_day = _split(ns)
    year, month, day = _civil_from_days(day_index)
    month0 = month - 1 + add_months
    year += add_years + month0 // 12
    month0 %= 12
    new_days = _days_from_civil(year, month0 + 1, 1) + day - 1 + add_days
    return _checked_ns(new_days * _SECONDS_PER_DAY * _NS_PER_SECOND + in_day)


def format_time(value: object) -> str:
    """``time.format(x)``: Go's ``Time.Format`` in UTC; RFC 3339 with nanoseconds unless given a layout."""
    from pyagent.engines.wasm.builtins.goformat import GoTime, format_layout, named_layout  # on first use

    ns, layout = _time_and_layout(value)
    days, in_day = _split(ns)
    year, month, day = _civil_from_days(days)
    seconds, nanosecond = divmod(in_day, _NS_PER_SECOND)
    fields = GoTime(
        year=year,
        month=month,
        day=day,
        hour=seconds // 3600,
        minute=seconds % 3600 // 60,
        second=seconds % 60,
        nanosecond=nanosecond,
        weekday=(days + 4) % 7,
        yearday=days - _days_from_civil(year, 1, 1) + 1,
    )
    return format_layout(fields, named_layout(layout or "RFC3339Nano"))


def parse_ns(layout: object, value: object) -> int:
    """``time.parse_ns(layout, value)``: Go's ``time.Parse`` (``goparse.py``) as Unix nanoseconds."""
    from pyagent.engines.wasm.builtins.goformat import named_layout  # on first use: the shipped
    from pyagent.engines.wasm.builtins.goparse import go_parse  # policy calls neither of these two

    t = go_parse(named_layout(string_operand(layout, 1)), string_operand(value, 2))
    days = _days_from_civil(t.year, t.month, t.day)
    seconds = days * _SECONDS_PER_DAY + t.hour * 3600 + t.minute * 60 + t.second
    offset = 0 if t.utc else t.offset
    return _checked_ns((seconds - offset) * _NS_PER_SECOND + t.nanosecond)
