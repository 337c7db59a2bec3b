"""Secrets out of messages: URL user-info, bearer and basic credentials, tokens in query strings.

Every message pyagent prints or logs goes through :func:`redact` (the CLI's error boundary and its
log handler, through :mod:`pyagent.termsafe`), so a password in ``--opa-url http://user:secret@host``
or a token echoed by a server never reaches a terminal, a journal or a CI log.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

REDACTED = "***"

# scheme://user-info@ : the user-info is everything up to the last "@" before the host's end.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#@\s]*)@")
# A credential after its scheme: 8 characters or more, not all lower-case letters (so that "Basic
# authentication" in prose stays as it is).
_AUTH = re.compile(
    r"(?P<scheme>\b(?:[Bb]earer|[Bb]asic|[Tt]oken)\s+)(?P<secret>(?=[A-Za-z0-9._~+/=-]*[^a-z\s])[A-Za-z0-9._~+/=-]{8,})"
)
# An Authorization header's credential, whatever its length (``Authorization: Bearer abc``, or quoted as
# in a dump of headers): after the header's name a scheme is a credential's, never prose.
_HEADER = re.compile(
    r"(?P<key>\bauthorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token)\s+)(?P<secret>[^\s\"',;)]+)",
    re.IGNORECASE,
)
# A pyagent server token (``pyagent server token add``: ``pya_`` and 43 characters of URL-safe base64),
# wherever it is: ``token=pya_…`` in prose, a header echoed without its scheme, a token pasted into a
# message, whatever is next to it (``Bearer%20pya_…`` URL-encoded, ``_pya_…``, ``pya_…_x``): ``pya_`` and
# at least 43 of those characters, all taken. A shorter id or revision that starts with ``pya_`` stays.
_SERVER_TOKEN = re.compile(r"pya_[A-Za-z0-9_-]{43,}")
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&;](?:access_token|token|password|passwd|secret|api_key|apikey|key|sig|signature|verify"
    r"|x-amz-[a-z-]+|x-goog-[a-z-]+)=)(?P<secret>[^&#\s]+)",  # (and a storage's signed URL's)
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with URL user-info, ``Bearer``/``Basic`` credentials (any length in an ``Authorization``
    header), tokens in query strings and
    pyagent server tokens (``pya_…``) replaced by ``***``."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    text = _HEADER.sub(lambda m: f"{m['key']}{REDACTED}", text)
    text = _AUTH.sub(lambda m: f"{m['scheme']}{REDACTED}", text)
    text = _SERVER_TOKEN.sub(REDACTED, text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{REDACTED}", text)


def redact_strings(value: Any) -> Any:
    """``value`` (parsed JSON) with every string in it redacted, keys kept as they are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_strings(item) for item in value]
    return value


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, without user-info, path or query: safe in any message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}{f':{port}' if port is not None else ''}"
