"""Single values of OPA's configuration tables, each checked as OPA reads it (one-line errors that name
the key and the file): a bearer scheme, a service's headers, polling delays, a bundle's size limit, a
partition name. :mod:`pyagent.config.opa` reads the tables with them."""

from __future__ import annotations

import re

from pyagent.config.check import Section
from pyagent.errors import InvalidInputError

DEFAULT_BUNDLE_SIZE_LIMIT = 64 * 1024 * 1024
"""The agent's default ``size_limit_bytes`` (OPA's is 1 GiB; ``pyagent server`` takes at most 64 MiB)."""


def scheme(bearer: Section) -> str:
    """``credentials.bearer.scheme``: ``Bearer`` when absent or empty, as OPA."""
    value = bearer.value.get("scheme")
    if value is None or value == "":
        return "Bearer"
    scheme = bearer.string("scheme") or "Bearer"
    if not _HEADER_NAME.fullmatch(scheme):
        raise bearer.fail("scheme", "must be one word (an authentication scheme such as Bearer)")
    return scheme


#: A header name (RFC 9110 token) and value (visible ASCII, spaces and tabs between).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?|")
#: Headers the HTTP client writes itself: how the message is framed and where it goes.
_FRAMING = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "te",
        "trailer",
        "upgrade",
        "keep-alive",
        "expect",
        "proxy-connection",
    }
)


def headers(section: Section) -> tuple[tuple[str, str], ...]:
    """``services.NAME.headers``: sent with every request to the service, as by OPA."""
    value = section.value.get("headers", {})
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"{section.key('headers')} in {section.source} must be a table of header names and values"
        )
    headers = []
    for name, text in value.items():
        where = f"{section.key('headers')}.{name} in {section.source}"
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise InvalidInputError(
                f"{section.key('headers')} in {section.source}: {name!r} is not a header name"
            )
        if name.lower() == "authorization":
            raise InvalidInputError(
                f"{where}: secrets are not kept in the config; put the token in a file and set "
                f"{section.key('credentials.bearer.token_path')}"
            )
        if name.lower() in _FRAMING:
            raise InvalidInputError(f"{where}: the agent's HTTP client sets this header itself")
        if not isinstance(text, str) or not _HEADER_VALUE.fullmatch(text):
            raise InvalidInputError(f"{where} must be visible ASCII characters and spaces, got {text!r:.60}")
        headers.append((name, text))
    return tuple(headers)


def delays(section: Section, default_min: int, default_max: int) -> tuple[float, float]:
    """``min_delay_seconds`` and ``max_delay_seconds``: both or neither (OPA refuses one without the
    other), min <= max. Fractions of a second are taken (OPA's are whole seconds)."""
    given = [key for key in ("min_delay_seconds", "max_delay_seconds") if section.has(key)]
    if len(given) == 1:
        other = "max_delay_seconds" if given[0] == "min_delay_seconds" else "min_delay_seconds"
        raise InvalidInputError(
            f"{section.key(given[0])} in {section.source} is given without {other}: give both (as OPA)"
        )
    min_delay = section.number("min_delay_seconds", default_min, minimum=0.1)
    max_delay = section.number("max_delay_seconds", default_max, minimum=0.1)
    if max_delay < min_delay:
        raise section.fail("max_delay_seconds", f"must be at least min_delay_seconds ({min_delay:g})")
    return min_delay, max_delay


def size_limit(section: Section) -> int:
    """``size_limit_bytes``: 0 or absent is the default (as OPA); else at least 1 KiB."""
    limit = section.integer("size_limit_bytes", 0, minimum=0)
    if limit == 0:
        return DEFAULT_BUNDLE_SIZE_LIMIT
    if limit < 1024:
        raise section.fail("size_limit_bytes", "must be 0 (the default) or at least 1024")
    return limit


def partition(section: Section) -> str | None:
    """``partition_name``: one path segment OPA appends to ``/logs`` or ``/status``."""
    if section.value.get("partition_name") == "":
        return None  # as OPA: empty is unset
    partition = section.string("partition_name")
    if partition is not None and not re.fullmatch(r"[A-Za-z0-9._~-]+", partition):
        raise section.fail("partition_name", "must be one URL path segment (letters, digits, . _ ~ -)")
    return partition
