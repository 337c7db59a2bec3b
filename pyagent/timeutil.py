"""RFC 3339 timestamps, as OPA's ``time.parse_rfc3339_ns`` reads them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pyagent.errors import InvalidInputError

# ASCII digits only (``\d`` takes any script's, which ``int()`` reads but OPA refuses), and nothing after
# the zone (``$`` would let a trailing newline through): always used with ``fullmatch``.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
)


def is_rfc3339(value: str) -> bool:
    """True for an RFC 3339 timestamp with a time zone, within calendar ranges."""
    match = _RFC3339.fullmatch(value)
    if not match:
        return False
    try:
        datetime(int(match[1]), int(match[2]), int(match[3]), int(match[4]), int(match[5]), int(match[6]))
    except ValueError:
        return False
    offset = match.group(8)
    return offset == "Z" or (int(offset[1:3]) < 24 and int(offset[4:6]) < 60)


#: The instants OPA's ``time.parse_rfc3339_ns`` reads: nanoseconds since the epoch in a signed 64-bit number.
OPA_FIRST, OPA_LAST = "1677-09-21T00:12:43.145224192Z", "2262-04-11T23:47:16.854775807Z"
_INT64 = (-(2**63), 2**63 - 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def in_opa_range(value: str) -> bool:
    """True for an RFC 3339 timestamp (:func:`is_rfc3339`) that OPA can read as nanoseconds, from
    ``OPA_FIRST`` to ``OPA_LAST``."""
    match = _RFC3339.fullmatch(value)
    if not match or not is_rfc3339(value):
        return False
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    seconds = (datetime(year, month, day, hour, minute, second, tzinfo=UTC) - _EPOCH) // timedelta(seconds=1)
    zone = match[8]
    if zone != "Z":
        seconds -= (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 60 + int(zone[4:6])) * 60
    fraction = int((match[7][1:] + "000000000")[:9]) if match[7] else 0
    return _INT64[0] <= seconds * 1_000_000_000 + fraction <= _INT64[1]


#: More than nine fraction digits: RFC 3339 allows any number, OPA reads nine (nanoseconds).
_LONG_FRACTION = re.compile(r"(\.[0-9]{9})[0-9]+")


def _upper_nine(value: str) -> str:
    return _LONG_FRACTION.sub(r"\1", value.upper(), count=1) if value.isascii() else value


def normal_rfc3339(value: str) -> str | None:
    """``value`` as OPA reads RFC 3339 (see :func:`check_rfc3339`: "t" and "z" in upper case, at most
    nine fraction digits), or None when it is no RFC 3339 timestamp."""
    normal = _upper_nine(value)
    return normal if is_rfc3339(normal) else None


def check_rfc3339(value: str, *, option: str) -> str:
    """``value`` as OPA reads RFC 3339, else a usage error naming ``option``. What RFC 3339 allows and
    OPA's ``time.parse_rfc3339_ns`` (Go's ``time.RFC3339``) refuses is written as OPA reads it, the
    same instant: a lower-case "t" or "z" in upper case, more than nine fraction digits cut to nine
    (below a nanosecond). A leap second has no such form: it is refused, saying why."""
    normal = _upper_nine(value)
    if is_rfc3339(normal):
        value = normal  # (a valid value is its own normal form)
    elif len(normal) > 18 and normal[16:19] == ":60" and is_rfc3339(normal[:17] + "59" + normal[19:]):
        raise InvalidInputError(
            f"{option}: {value!r}: a leap second; RFC 3339 allows it, but OPA's time.parse_rfc3339_ns "
            "refuses it (write :59)"
        )
    if not is_rfc3339(value):
        raise InvalidInputError(
            f"{option}: {value!r} is not an RFC 3339 timestamp (example: 2023-03-16T09:30:00Z)"
        )
    if not in_opa_range(value):
        raise InvalidInputError(
            f"{option}: {value!r} is outside the instants OPA can evaluate ({OPA_FIRST} to {OPA_LAST})"
        )
    return value


def now_rfc3339() -> str:
    """The current time in UTC, to the second, as RFC 3339."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


#: ``2w``, ``1d``, ``24h``, ``90m``, ``1h30m``, ``45s``, ``2d12h``: whole weeks, days, hours, minutes and
#: seconds in that order (ASCII digits, up to 9 each), or a whole number of seconds.
_DURATION = re.compile(
    r"([0-9]{1,9})|(?=[0-9])(?:([0-9]{1,9})w)?(?:([0-9]{1,9})d)?(?:([0-9]{1,9})h)?(?:([0-9]{1,9})m)?"
    r"(?:([0-9]{1,9})s)?"
)
#: ISO 8601's ``PT1H``, ``P1D``, ``P1DT12H``, ``PT90M``, ``P2W``: weeks, days, hours, minutes and seconds
#: (years and months have no fixed length, so they are no step).
_ISO_DURATION = re.compile(
    r"P(?=[0-9T])(?:([0-9]{1,9})W)?(?:([0-9]{1,9})D)?"
    r"(?:T(?=[0-9])(?:([0-9]{1,9})H)?(?:([0-9]{1,9})M)?(?:([0-9]{1,9})S)?)?"
)
#: A duration's parts, in seconds, from its last (seconds) back: a short form's leading whole number of
#: seconds is its sixth.
_UNIT_SECONDS = (1, 60, 3600, 86400, 604800, 1)
#: The longest duration read: a hundred years (a step, a staleness), far from ``timedelta``'s limit.
MAX_DURATION_SECONDS = 100 * 365 * 86400
#: What a duration must be, for messages.
DURATION_EXPECTED = (
    'a duration of at most 100 years, such as "1d", "24h", "90m", "1h30m", "45s", "PT1H", or seconds'
)


def duration_seconds(text: str) -> int | None:
    """The seconds of ``text`` (see ``_DURATION`` and ``_ISO_DURATION``), or None when it is no duration,
    is zero or is past :data:`MAX_DURATION_SECONDS`."""
    found = _DURATION.fullmatch(text) or _ISO_DURATION.fullmatch(text)
    if found is None:
        return None
    parts = [int(part or 0) for part in found.groups()]  # (the short form has whole seconds first)
    total = sum(part * unit for part, unit in zip(reversed(parts), _UNIT_SECONDS, strict=False))
    return total if 0 < total <= MAX_DURATION_SECONDS else None
