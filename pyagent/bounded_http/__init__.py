"""Bounded HTTP: every request pyagent makes is finished within a total deadline, its answer bounded
in size, and no redirect is followed (see :mod:`pyagent.bounded_http.core` and
:mod:`pyagent.bounded_http.session`).

- :func:`request`: one request on a connection of its own (the plug-ins' downloads and uploads);
- :class:`Session`: requests over connections kept open between them (the ``opa`` engine's decisions).
"""

from __future__ import annotations

from pyagent.bounded_http.core import (
    CHUNK,
    MAX_ERROR_BODY,
    BodyTooLarge,
    Reply,
    Sink,
    Target,
    TransportError,
)
from pyagent.bounded_http.session import MAX_IDLE_SECONDS, Session, request
from pyagent.bounded_http.tls import tls_context

__all__ = [
    "CHUNK",
    "MAX_ERROR_BODY",
    "MAX_IDLE_SECONDS",
    "BodyTooLarge",
    "Reply",
    "Session",
    "Sink",
    "Target",
    "TransportError",
    "request",
    "tls_context",
]
