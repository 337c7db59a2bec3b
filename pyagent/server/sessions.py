"""Dashboard logins without tokens in URLs: a reader posts a token once and gets a session cookie
(HttpOnly, SameSite=Strict, Secure on HTTPS). The store knows a session by the SHA-256 of its cookie
and by the token it came from: revoking the token ends its sessions. State-changing forms carry the
session's CSRF token, and a POST from another origin is refused."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from pyagent.server.auth import GRANTS, authorization, token_hash
from pyagent.server.errors import HttpError
from pyagent.server.store.base import Store

COOKIE = "pyagent_session"
LIFETIME = timedelta(hours=8)


@dataclass(frozen=True)
class Viewer:
    role: str
    csrf: str  # empty for a bearer-token client, which sends no cookie and needs no CSRF token


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def login(store: Store, token: str) -> str:
    """A new session for ``token`` (reader or admin): the cookie's value (its CSRF token is stored)."""
    grant = store.grant_for(token_hash(token))
    if grant is None:
        raise HttpError(401, "unauthorized", "that token cannot read the fleet")
    if grant.role not in GRANTS["reader"]:  # a valid token of the wrong role: 403, as on the API
        raise HttpError(403, "forbidden", "that token cannot read the fleet")
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    store.create_session(_digest(cookie), token_hash(token), csrf, datetime.now(UTC) + LIFETIME)
    return cookie


def viewer(request: Request, store: Store) -> Viewer | None:
    """Who is looking: a session cookie, or a reader's bearer token; None when neither."""
    header = authorization(request)
    if header.lower().startswith("bearer "):
        grant = store.grant_for(token_hash(header[7:].strip()))
        return Viewer(grant.role, "") if grant is not None and grant.role in GRANTS["reader"] else None
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    found = store.session(_digest(cookie), datetime.now(UTC))
    return Viewer(*found) if found else None


def logout(request: Request, store: Store) -> None:
    cookie = request.cookies.get(COOKIE)
    if cookie:
        store.end_session(_digest(cookie), datetime.now(UTC))


def set_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def same_origin(request: Request) -> bool:
    """A POST is ours when its Origin (or, lacking one, its Referer) is this server."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin is None:
        return True  # a non-browser client: it holds the token or the cookie itself
    expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin == expected or origin.startswith(expected + "/")


def check_csrf(request: Request, who: Viewer, submitted: str | None) -> None:
    if not same_origin(request):
        raise HttpError(403, "forbidden", "cross-origin form posts are refused")
    if who.csrf and not hmac.compare_digest(who.csrf, submitted or ""):
        raise HttpError(403, "forbidden", "the form's CSRF token is missing or wrong; reload the page")
