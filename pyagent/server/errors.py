"""HTTP errors of the server: a status and a one-line reason, answered as OPA answers errors
(``{"code": ..., "message": ...}``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.routing import Route


class HttpError(Exception):
    """``close``: answered before the whole body was read, so the connection is closed after the
    answer and the rest of the body (slow, huge or garbled) is never read as a next request."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        close: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.close = close
        self.headers = dict(headers or {})


def bad_request(message: str) -> HttpError:
    return HttpError(400, "invalid_parameter", message)


def too_large(message: str) -> HttpError:
    return HttpError(413, "request_too_large", message, close=True)


def catch_all(endpoint: Any) -> Any:
    """Mark ``endpoint`` as a catch-all's (a 404 for any path under it, by any method): its methods
    are never a path's allowed ones (:func:`allowed_methods`)."""
    endpoint.pyagent_catch_all = True
    return endpoint


def allowed_methods(request: Request) -> list[str]:
    """The methods by which some route serves the request's path (a catch-all left out), sorted: the
    ``Allow`` of a 405, whichever route Starlette tried first; none: no route serves the path."""
    path = request.scope["path"]
    return sorted(
        {
            method
            for route in request.app.router.routes
            if isinstance(route, Route)
            and not getattr(route.endpoint, "pyagent_catch_all", False)
            and route.path_regex.fullmatch(path)
            for method in route.methods or ()
        }
    )


def no_route(request: Request) -> HttpError:
    """No route serves the request: 405 with ``Allow`` (every route's methods for the path, whichever
    Starlette tried first) when some route serves the path by other methods, else 404. The path is the
    request's own (``scope``), line breaks and all: a URL rebuilt from it drops them."""
    where = f"{request.method} {request.scope['path']}"
    allowed = allowed_methods(request)
    if allowed:
        listed = ", ".join(allowed)
        message = f"{where}: allowed methods are {listed}"
        return HttpError(405, "method_not_allowed", message, headers={"Allow": listed})
    return HttpError(404, "not_found", f"{where}: not found")
