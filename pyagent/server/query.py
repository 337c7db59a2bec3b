"""Query parameters of the fleet API, checked: a bad one is a 400 that names it."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timedelta

from starlette.requests import Request

from pyagent.server.errors import bad_request
from pyagent.server.instants import parse_instant
from pyagent.server.store.base import NO_ORGANIZATION, Organization
from pyagent.timeutil import DURATION_EXPECTED, duration_seconds, normal_rfc3339

# ASCII digits only: str.isdigit() and \d take other scripts' digits (Arabic-Indic one, superscript
# two), which int() reads as numbers or refuses with a ValueError
_NUMBER = re.compile(r"[0-9]{1,9}")


def only(request: Request, *known: str, blank_ok: bool = False) -> None:
    """A parameter this route does not read is a 400 naming it: a typo (``orgnization=``) or a
    question the route does not answer (``at=`` of a current state) must not get an answer that looks
    like the one asked for. So is a parameter given twice (only the last was obeyed), and, unless
    ``blank_ok`` (a page's form sends its blank fields), one given empty: ``organization=$ORG`` with
    ``ORG`` unset would get the whole fleet."""
    unknown = sorted(set(request.query_params) - set(known))
    if unknown:
        takes = ", ".join(known) if known else "none"
        raise bad_request(f"{unknown[0]}: not a parameter of {request.scope['path']} (it takes: {takes})")
    for name in request.query_params:  # which of two values was meant is not ours to guess
        given = len(request.query_params.getlist(name))
        if given > 1:
            raise bad_request(f"{name}: given {given} times; give it once")
        if not blank_ok and not request.query_params[name] and name != "cursor":  # (cursor=: the start)
            raise bad_request(f"{name}: given empty; leave it out to ask without it")


def _given(request: Request, name: str) -> str | None:
    """The parameter's value; an empty one (a blank form field) counts as not given."""
    return request.query_params.get(name) or None


#: A timestamp whose zone offset lost its '+' to form decoding (``…T00:00:00 01:00``).
_SPACED_OFFSET = re.compile(r"T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)? [0-9]{2}:[0-9]{2}$", re.IGNORECASE)


def instant(request: Request, name: str) -> datetime | None:
    value = _given(request, name)
    if value is None:
        return None
    normal = normal_rfc3339(value)
    if normal is None:
        hint = (
            "; a '+' in a query string reads as a space: write it as %2B"
            if _SPACED_OFFSET.search(value)
            else ""
        )
        raise bad_request(
            f"{name}={value!r}: expected an RFC 3339 timestamp, e.g. 2023-03-16T09:30:00Z{hint}"
        )
    try:
        return parse_instant(normal)
    except ValueError as err:
        raise bad_request(f"{name}={value!r}: {err}") from err


#: How a boolean parameter may be written (case aside).
FLAG_SPELLINGS = {"true": True, "false": False, "1": True, "0": False}


def flag(request: Request, name: str) -> bool | None:
    value = _given(request, name)
    if value is None:
        return None
    spelled = value.lower()  # (as clients send booleans: Python's True, 1)
    if spelled not in FLAG_SPELLINGS:
        raise bad_request(f"{name}={value!r}: expected true or false")
    return FLAG_SPELLINGS[spelled]


def text(request: Request, name: str, limit: int = 512) -> str | None:
    value = _given(request, name)
    if value is not None and (len(value) > limit or "\0" in value):
        raise bad_request(f"{name}: expected 1-{limit} characters")
    return value


def organization(request: Request, *, name_wins: bool = False) -> Organization:
    """``organization=NAME`` (that organisation's devices), ``no_organization=true`` (the devices
    whose decisions name none: not a name, so it never matches an organisation named ``(none)``),
    or None (every device). Both: a 400, or with ``name_wins`` (the dashboard, whose form keeps the
    box ticked when an organisation is then chosen) the organisation."""
    name = text(request, "organization", 512)
    orgless = _given(request, "no_organization")
    if orgless is None:
        return name
    if FLAG_SPELLINGS.get(orgless.lower()) is not True:
        raise bad_request(f"no_organization={orgless!r}: expected true")
    if name is not None:
        if name_wins:
            return name
        raise bad_request("organization and no_organization=true: give one or the other")
    return NO_ORGANIZATION


def number(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = _given(request, name)
    if value is None:
        return default
    if not _NUMBER.fullmatch(value) or not low <= int(value) <= high:
        raise bad_request(f"{name}={value!r}: expected a whole number from {low} to {high}")
    return int(value)


def duration(request: Request, name: str) -> timedelta | None:
    value = _given(request, name)
    if value is None:
        return None
    seconds = duration_seconds(value)
    if seconds is None:
        raise bad_request(f"{name}={value!r}: expected {DURATION_EXPECTED}")
    return timedelta(seconds=seconds)


def encode_cursor(device_id: str | None) -> str | None:
    if device_id is None:
        return None
    return base64.urlsafe_b64encode(device_id.encode()).decode().rstrip("=")


def cursor(request: Request) -> str | None:
    value = request.query_params.get("cursor")
    if value is None or value == "":
        return None
    try:
        device_id = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise bad_request("cursor: not a cursor this API gave out") from err
    if not device_id or len(device_id) > 512 or "\0" in device_id or encode_cursor(device_id) != value:
        raise bad_request("cursor: not a cursor this API gave out")
    return device_id


def output_format(request: Request, *allowed: str) -> str:
    """The ``format`` asked (``json`` when not given); any other than ``allowed`` is a 400."""
    value = _given(request, "format") or "json"
    if value not in ("json", *allowed):
        raise bad_request(f"format={value!r}: expected {' or '.join(('json', *allowed))}")
    return value
