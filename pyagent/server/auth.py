"""Bearer tokens and roles. A token is 32 random bytes (URL-safe base64, prefixed ``pya_``), shown
once; the store keeps its SHA-256 only (a token is high-entropy, so a fast hash suffices and a
lookup by hash needs no comparison in Python)."""

from __future__ import annotations

import hashlib
import re
import secrets

from starlette.requests import Request

from pyagent.errors import InvalidInputError
from pyagent.server.errors import HttpError
from pyagent.server.store.base import Grant, Store
from pyagent.termsafe import shorten

PREFIX = "pya_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,199}")
#: A device id as the report schema takes it: 1-512 characters, no C0 control character or DEL.
_DEVICE = re.compile(r"[^\x00-\x1f\x7f\ud800-\udfff]{1,512}")  # (lone surrogates: not UTF-8, no id)
#: How ``token list`` shows a token bound to no device (so no device may be named so).
ANY_DEVICE = "*"
#: Which roles may call what. ``admin`` may do everything a reader may.
GRANTS = {"agent": {"agent"}, "reader": {"reader", "admin"}, "admin": {"admin"}}


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):  # (match: "$" lets a trailing newline through)
        raise InvalidInputError(
            f"token name {shorten(repr(name), 80)}: use 1-200 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_device_id(device: str) -> str:
    if device == ANY_DEVICE:
        raise InvalidInputError(
            f"--device {ANY_DEVICE!r}: that is how token list shows a token for any device"
        )
    if not _DEVICE.fullmatch(device):
        shown = repr(device) if len(device) <= 80 else f"{device[:80]!r}… ({len(device)} characters)"
        raise InvalidInputError(
            f"--device {shown}: a device id is 1-512 characters without control characters, "
            "as in the device report"
        )
    return device


def authorization(request: Request) -> str:
    """The request's one ``Authorization`` header ("" without one); two are refused (401) rather than
    one chosen: a proxy that adds its own must not decide which credential counts."""
    headers = request.headers.getlist("authorization")
    if len(headers) > 1:
        raise HttpError(401, "unauthorized", f"{len(headers)} Authorization headers; send one")
    return headers[0] if headers else ""


def require(request: Request, store: Store, need: str) -> Grant:
    """The caller's grant when it may do what ``need`` grants; 401 without a valid token, 403 with the
    wrong role. Runs in a worker thread (one indexed read)."""
    header = authorization(request)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HttpError(401, "unauthorized", "a bearer token is required")
    grant = store.grant_for(token_hash(token.strip()))
    if grant is None:
        raise HttpError(401, "unauthorized", "the bearer token is not valid")
    if grant.role not in GRANTS[need]:
        raise HttpError(
            403, "forbidden", f"a token with role {grant.role!r} may not do this (needs {need!r})"
        )
    return grant


def check_device(grant: Grant, device_id: str, what: str) -> None:
    """A token bound to one device reports for that device only (403 otherwise): a device's token,
    taken from it, cannot set another device's verdict or status."""
    if grant.device is not None and device_id != grant.device:
        raise HttpError(
            403,
            "forbidden_device",
            f"{what} is for device {device_id!r}; this token reports for device {grant.device!r} only",
        )
