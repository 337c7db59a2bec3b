"""The one app factory: routes of every API, errors as OPA answers them, the lifespan that opens
the store (migrating it), starts the long-poll notifier and the retention job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote_to_bytes

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.convertors import CONVERTOR_TYPES, Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pyagent.errors import InvalidInputError
from pyagent.logsetup import get_logger
from pyagent.server import api, bundles, dashboard, fleet_api, logs, status
from pyagent.server.context import ServerContext
from pyagent.server.errors import HttpError, no_route
from pyagent.server.notify import DRAINING, Notifier
from pyagent.server.protocol import set_header_deadline
from pyagent.server.settings import ServerSettings
from pyagent.server.store import StoreConflict, StoreError, open_store
from pyagent.server.store.base import QueryTimeout, Store

log = get_logger("pyagent.server")
RETENTION_EVERY_SECONDS = 3600
HEALTH_TIMEOUT_SECONDS = 5.0
"""How long /health waits for the database's answer before it says 503 (a pooled connection to a
PostgreSQL that stopped answering, with its host still there, would otherwise hold it for good)."""


def create_app(settings: ServerSettings, store: Store | None = None) -> Starlette:
    """The ASGI app. ``store`` (already migrated) is for tests; else it is opened from the settings."""
    set_header_deadline(settings.body_timeout_seconds)  # this process's connections: see protocol.py
    _register_convertors()  # before any route is made: routes name them
    verification = settings.verification.config() if settings.verification else None
    the_store = store or open_store(settings.db, state_dir=settings.state_dir, migrate=False)
    the_store.query_timeout_seconds = settings.query_timeout_seconds
    ctx = ServerContext(the_store, settings, Notifier(the_store), verification)

    async def health(_request: Request) -> Response:
        try:  # a database that holds a pooled connection and never answers is not available either
            await ctx.call(ctx.store.ping, seconds=HEALTH_TIMEOUT_SECONDS)  # (a timeout logged there)
        except (StoreError, HttpError) as err:  # the reason (which names the database) goes to the log
            if isinstance(err, StoreError):
                log.warning("health: %s", err)
            return JSONResponse({"status": "unavailable", "message": "the database is not available"}, 503)
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        DRAINING.clear()  # (a process that serves again, after an app that was shut down)
        await run_in_threadpool(ctx.store.migrate)
        await ctx.notifier.start()
        retention = asyncio.create_task(_retention(ctx))
        try:
            yield
        finally:
            retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retention
            await ctx.notifier.stop()
            if store is None:
                ctx.store.close()

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            *bundles.routes(ctx),
            *logs.routes(ctx),
            *status.routes(ctx),
            *api.routes(ctx),
            *fleet_api.routes(ctx),
            *dashboard.routes(ctx),
        ],
        exception_handlers={
            StarletteHTTPException: _routing_error,
            ClientDisconnect: _gone,
            HttpError: _http_error,
            StoreConflict: _conflict,
            InvalidInputError: _invalid,
            QueryTimeout: _too_long,
            StoreError: _unavailable,
        },
        middleware=[Middleware(_ApiHeaders), Middleware(_CheckedPath)],
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # a path is a bundle's or a device's name: never another one
    app.state.ctx = ctx
    return app


def export_to_workers(settings: ServerSettings) -> None:
    """What :func:`create_app_from_env` reads in each ``--workers`` process, in the environment they
    inherit: the settings, and this process's log level (``-v``: info)."""
    import os

    from pyagent.logsetup import LEVEL_ENV, ROOT
    from pyagent.server.settings import SETTINGS_ENV, to_env

    os.environ[SETTINGS_ENV] = to_env(settings)
    os.environ[LEVEL_ENV] = str(logging.getLogger(ROOT).getEffectiveLevel())


def create_app_from_env() -> Starlette:
    """The app of one ``--workers`` process: its settings come from the parent, as JSON, and its log
    goes to stderr at the parent's level (its warnings are the server's log too)."""
    import os

    from pyagent.logsetup import LEVEL_ENV, log_to_stderr
    from pyagent.server.settings import SETTINGS_ENV, from_env

    log_to_stderr(int(os.environ.get(LEVEL_ENV, logging.WARNING)))
    return create_app(from_env(os.environ[SETTINGS_ENV]))


async def _retention(ctx: ServerContext) -> None:
    days = ctx.settings.retention_days
    if days <= 0:
        return
    while True:
        before = datetime.now(UTC) - timedelta(days=days)
        try:
            dropped = await run_in_threadpool(ctx.store.prune, before)
            if dropped:
                log.info("retention: dropped %d history rows/partitions before %s", dropped, before.date())
        except StoreError as err:
            log.warning("retention failed, retrying later: %s", err)
        await asyncio.sleep(RETENTION_EVERY_SECONDS)


class _AnyPath(Convertor[str]):
    """``{name:anypath}``: the rest of the path, whatever characters it holds. Starlette's ``path``
    is ``.*``, which stops at a line break, so an id holding one (CONTRACT forbids only NUL) reached
    no route; this one takes line breaks too (``\n``, ``\r``, U+2028)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


def _register_convertors() -> None:
    if "anypath" not in CONVERTOR_TYPES:  # (Starlette keeps one registry per process)
        register_url_convertor("anypath", _AnyPath())


class _CheckedPath:
    """A path with a NUL (``%00``) names nothing the server holds (ids and names never contain one):
    400 before any route, so that no NUL reaches the database (PostgreSQL refuses it in text, which
    would read as the database failing). So is a path or query whose percent-escapes are not UTF-8
    (``%FF``): decoded, each such byte would be U+FFFD, and other bytes would name the device (or the
    organisation) called "\ufffd". So is a request with two Host headers (RFC 9112), whose origin the
    dashboard's check would read from the first."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = _path_problem(scope)
            if problem is not None:
                refused = HttpError(400, "invalid_parameter", problem)
                await _answer(scope["path"], refused)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _path_problem(scope: Scope) -> str | None:
    if "\0" in scope["path"]:
        return "the request's path contains a NUL character"
    hosts = sum(1 for name, _ in scope.get("headers", ()) if name == b"host")
    if hosts > 1:  # (RFC 9112: 400; which one a check of the origin would read is not ours to choose)
        return f"the request has {hosts} Host headers; send one"
    for part, raw in (("path", scope.get("raw_path")), ("query", scope.get("query_string"))):
        try:
            if raw:
                unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return f"the request's {part} is not UTF-8 once its %-escapes are decoded"
    return None


class _ApiHeaders:
    """No browser may read an answer as anything but its type (``nosniff``), whatever the path: a
    health check or an error echoes the path it was asked. What the fleet API answers is a reader's
    view of the fleet: no cache may keep it either (``Cache-Control: no-store``); the dashboard's
    pages say the same (``dashboard/layout.py``)."""

    EVERY = ((b"x-content-type-options", b"nosniff"),)
    API = ((b"cache-control", b"no-store"), *EVERY)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = self.API if scope["path"].startswith("/api/") else self.EVERY

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in added if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error(
    status: int, code: str, message: str, *, close: bool = False, headers: Mapping[str, str] | None = None
) -> Response:
    headers = {**(headers or {}), **({"Connection": "close"} if close else {}), **_challenge(status)}
    return JSONResponse({"code": code, "message": message}, status, headers=headers or None)


def _challenge(status: int) -> dict[str, str]:
    """A 401 names the scheme that would be accepted (RFC 6750)."""
    return {"WWW-Authenticate": 'Bearer realm="pyagent"'} if status == 401 else {}


_API_PREFIXES = ("/api/", "/bundles/", "/logs", "/status", "/health")


def _answer(path: str, err: HttpError) -> Response:
    """``err`` as JSON on the API's paths, and as a page elsewhere (a dashboard page: a person reads it)."""
    if not path.startswith(_API_PREFIXES):
        from pyagent.server.dashboard.layout import HEADERS, error_page

        headers = {
            **HEADERS,
            **err.headers,
            **({"Connection": "close"} if err.close else {}),
            **_challenge(err.status),
        }
        return HTMLResponse(error_page(err.status, err.message), err.status, headers=headers)
    return _error(err.status, err.code, err.message, close=err.close, headers=err.headers)


async def _http_error(request: Request, err: Exception) -> Response:
    assert isinstance(err, HttpError)
    return _answer(request.url.path, err)


async def _routing_error(request: Request, err: Exception) -> Response:
    """No route for the path (404), or not by this method (405): the server's own error
    (:func:`~pyagent.server.errors.no_route`), as JSON on the API's paths and as a page elsewhere, rather
    than Starlette's plain text. Another (a form's 400) keeps its words."""
    assert isinstance(err, StarletteHTTPException)
    if err.status_code in (404, 405):  # (405 for a catch-all's path, by a method it does not list: no route)
        return await _http_error(request, no_route(request))
    return await _http_error(request, HttpError(err.status_code, "http_error", str(err.detail)))


async def _gone(request: Request, _err: Exception) -> Response:
    """The client closed its connection before its body was read: nobody is left to answer (the answer
    is dropped), and nothing to log past a debug line (it was a traceback per connection)."""
    log.debug("client went away during %s %s", request.method, request.url.path)
    return Response(None, 400)


async def _conflict(_request: Request, err: Exception) -> Response:
    return _error(409, "conflict", str(err))


async def _invalid(request: Request, err: Exception) -> Response:
    return _answer(request.url.path, HttpError(400, "invalid_parameter", str(err)))


async def _too_long(request: Request, err: Exception) -> Response:
    log.warning("query stopped: %s %s: %s", request.method, request.url.path, err)
    message = f"{err}: ask for less (a shorter range, a wider step, a narrower filter)"
    return await _http_error(request, HttpError(503, "query_timeout", message))


async def _unavailable(request: Request, err: Exception) -> Response:
    log.warning("store error: %s", err)
    return _answer(request.url.path, HttpError(503, "unavailable", "the database is not available"))
