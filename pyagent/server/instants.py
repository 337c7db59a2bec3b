"""A decision's instant, as the server reads it from a decision-log event: ``input.at`` to the
microsecond (:func:`parse_instant`); whether it is a fact about the device yet (not dated ahead of its
arrival, ``MAX_AHEAD``); and whether it was asked about another instant than when it was made (a
what-if or a replay, stored at its instant and said in the log: :func:`asked_another_time`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pyagent.timeutil import is_rfc3339, normal_rfc3339

#: How far a decision's instant may be ahead of the server's clock when it arrives (clock skew).
MAX_AHEAD = timedelta(minutes=5)
#: How far a decision's instant (``input.at``) may be from when it was made (the event's ``timestamp``)
#: and still be taken as asked when it was made: the clocks of an agent and of the OPA it asks may differ.
MAX_ASKED_GAP = timedelta(hours=1)


def parse_instant(value: str) -> datetime:
    """An RFC 3339 timestamp (checked) as an aware UTC datetime, to the microsecond; ValueError for
    one that is not in years 1-9999 in UTC (``0001-01-01T00:00:00+01:00`` is in year 0)."""
    text = value.replace("z", "Z").replace("t", "T")
    if "." in text:  # Python keeps microseconds: cut nanoseconds, keep the zone
        head, _, tail = text.partition(".")
        digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]  # (the fraction's: not the zone's)
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except OverflowError as err:
        raise ValueError(f"{value} is out of range (years 1 to 9999 in UTC)") from err


def asked_another_time(event: Any, asked_at: datetime | None = None) -> bool:
    """Whether ``event`` is a decision about another instant than when it was made: its ``input.at``
    over ``MAX_ASKED_GAP`` from its ``timestamp`` (an event without one, or with an instant out of
    years 1-9999, is taken at its ``input.at``). ``asked_at``: ``input.at`` already parsed."""
    if not isinstance(event, dict) or not isinstance(event.get("input"), dict):
        return False
    made, asked = event.get("timestamp"), event["input"].get("at")
    if made == asked:  # an agent's event (it stamps its input.at): nothing to parse
        return False
    if not (isinstance(made, str) and isinstance(asked, str) and is_rfc3339(asked)):
        return False
    made = normal_rfc3339(made)  # (OPA writes upper case; RFC 3339 allows "t" and "z" too)
    if made is None:
        return False
    try:
        return abs((asked_at or parse_instant(asked)) - parse_instant(made)) > MAX_ASKED_GAP
    except ValueError:
        return False
