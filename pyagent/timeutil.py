"""RFC 3339 timestamps, as OPA's ``time.parse_rfc3339_ns`` reads them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pyagent.errors import InvalidInputError

_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def is_rfc3339(value: str) -> bool:
    """True for an RFC 3339 timestamp with a time zone, within calendar ranges."""
    match = _RFC3339.match(value)
    if not match:
        return False
    try:
        datetime(int(match[1]), int(match[2]), int(match[3]), int(match[4]), int(match[5]), int(match[6]))
    except ValueError:
        return False
    offset = match.group(8)
    return offset == "Z" or (int(offset[1:3]) < 24 and int(offset[4:6]) < 60)


def check_rfc3339(value: str, *, option: str) -> str:
    """``value`` unchanged when it is RFC 3339, else a usage error naming ``option``."""
    if not is_rfc3339(value) and is_rfc3339(value.upper()):
        # RFC 3339 allows "t" and "z"; OPA's time.parse_rfc3339_ns (Go's time.RFC3339) does not.
        raise InvalidInputError(
            f"{option}: {value!r}: write 'T' and 'Z' in upper case ({value.upper()}); RFC 3339 allows "
            "lower case, but OPA's time.parse_rfc3339_ns refuses it"
        )
    if not is_rfc3339(value):
        raise InvalidInputError(
            f"{option}: {value!r} is not an RFC 3339 timestamp (example: 2023-03-16T09:30:00Z)"
        )
    return value


def now_rfc3339() -> str:
    """The current time in UTC, to the second, as RFC 3339."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
