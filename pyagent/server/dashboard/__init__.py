"""The security team's view: server-rendered pages over the fleet API (CONTRACT section 8), behind a
reader login with a session cookie. No script runs on the pages; filters are forms, paging is links."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, quote_from_bytes, urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from pyagent.server import query, sessions
from pyagent.server.body import body_deadline
from pyagent.server.context import ServerContext
from pyagent.server.dashboard import layout, pages
from pyagent.server.errors import HttpError
from pyagent.server.fleet_api import device_json
from pyagent.server.store.base import NO_ORGANIZATION, Organization, Store
from pyagent.server.store.fleet import NO_ORGANIZATION_KEY, DeviceFilter, earlier, iso
from pyagent.server.store.history import history_steps

TREND_DAYS = 14
STALE_LISTED = 20


def _html(body: str, status: int = 200, refresh: int = 0) -> HTMLResponse:
    """``refresh``: seconds after which the browser loads the page again (the ``Refresh`` header, which
    every browser obeys and no Content-Security-Policy forbids: the dashboard runs no script), so a
    page of the fleet as it is now stays live; 0 for none."""
    headers = {**layout.HEADERS, **({"Refresh": str(refresh)} if refresh > 0 else {})}
    return HTMLResponse(body, status, headers=headers)


_URL_SAFE = "".join(map(chr, range(0x21, 0x7F)))
"""What a URL may hold unescaped here: printable ASCII (a space, a control character or any other
character is %-escaped, so that a line break in a device's id stays in its page's URL)."""


def _local(path: str | None) -> str:
    """Where to go after login: a path on this server only (never ``//host`` or a scheme), escaped."""
    path = quote(path or "", safe=_URL_SAFE)
    if not path.startswith("/") or path.startswith("//") or "\\" in path or urlsplit(path).netloc:
        return "/"
    return path


def _asked(request: Request) -> str:
    """The path and query the client asked for, as it sent them: escapes are kept, so that a device
    id holding ``#``, ``?``, ``%2F`` or a line break leads back to its page after login."""
    path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    asked = quote_from_bytes(path, safe=_URL_SAFE)
    return asked + (f"?{quote_from_bytes(query, safe=_URL_SAFE)}" if query else "")


def routes(ctx: ServerContext, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> list[Route]:
    stale_after = timedelta(seconds=ctx.settings.stale_after_seconds)
    live = ctx.settings.dashboard_refresh_seconds  # the pages of now reload; a past instant's never change

    async def who(request: Request) -> sessions.Viewer | None:
        return await run_in_threadpool(sessions.viewer, request, ctx.store)

    async def gate(request: Request) -> sessions.Viewer | Response:
        """A bearer token is answered as the API answers it (401 not valid, 403 wrong role); with no
        credentials at all, a browser (it asks for HTML) goes to the login page and any other client
        gets 401; an ended session cookie goes back to the login page."""
        if "authorization" in request.headers:
            await ctx.authorize(request, "reader")
        viewer = await who(request)
        if viewer is None:
            browser = "text/html" in request.headers.get("accept", "")
            if not browser and sessions.COOKIE not in request.cookies:
                raise HttpError(401, "unauthorized", "a reader's bearer token or a session is required")
            return RedirectResponse(f"/login?{urlencode({'next': _asked(request)})}", 303)
        return viewer

    async def overview(request: Request) -> Response:
        viewer = await gate(request)
        if isinstance(viewer, Response):
            return viewer
        query.only(request, "at", "organization", "no_organization", blank_ok=True)  # a typo is no filter
        at = query.instant(request, "at")
        organization = query.organization(request, name_wins=True)
        body = await ctx.read(_overview, ctx.store, clock(), at, organization, stale_after)
        page = layout.page("Fleet compliance", body, here="/", csrf=viewer.csrf or None)
        return _html(page, refresh=live if at is None else 0)

    async def devices(request: Request) -> Response:
        viewer = await gate(request)
        if isinstance(viewer, Response):
            return viewer
        query.only(request, *pages.FILTERS, "cursor", "limit", blank_ok=True)
        wanted = DeviceFilter(
            organization=query.organization(request, name_wins=True),
            platform=query.text(request, "platform", 32) or None,
            compliant=query.flag(request, "compliant"),
            stale=query.flag(request, "stale"),
            ban=query.text(request, "ban", 200) or None,
            cursor=query.cursor(request),
            limit=query.number(request, "limit", 50, 1, 500),
        )
        page, last = await ctx.read(ctx.store.device_page, wanted, now=clock(), stale_after=stale_after)
        filters = {name: request.query_params.get(name) for name in (*pages.FILTERS, "limit")}
        body = pages.device_list(page, filters, query.encode_cursor(last))
        return _html(layout.page("Devices", body, here="/devices", csrf=viewer.csrf or None), refresh=live)

    async def device(request: Request) -> Response:
        """``/devices/{id}``; or ``/device?id=`` for the ids a browser would take for dot segments
        (``.``, ``..``: it collapses them, ``%2E`` too, before sending the request)."""
        viewer = await gate(request)
        if isinstance(viewer, Response):
            return viewer
        if "device_id" in request.path_params:
            query.only(request, blank_ok=True)  # a device's page is of its current state: no at=
            device_id = request.path_params["device_id"]
        else:
            query.only(request, "id", blank_ok=True)
            device_id = request.query_params.get("id") or ""
            if not device_id:
                raise HttpError(400, "invalid_parameter", "id: the device's id is required")
        state = await ctx.read(functools.partial(ctx.store.device, device_id, history=100, since=True))
        if state is None:
            raise HttpError(404, "device_not_found", f"no decision is stored for device {device_id!r}")
        report = await ctx.read(ctx.store.report, state.report_digest) if state.report_digest else None
        body = pages.device_page(device_json(state, stale_after, clock()), report)
        return _html(layout.page(device_id, body, here="", csrf=viewer.csrf or None), refresh=live)

    async def login_form(request: Request) -> Response:
        return _html(layout.login_page(next_path=_local(request.query_params.get("next"))))

    async def login(request: Request) -> Response:
        if not sessions.same_origin(request):
            raise HttpError(403, "forbidden", "cross-origin form posts are refused")
        with body_deadline(ctx.settings.limits.max_seconds):  # no token needed to send it: not held forever
            async with request.form(max_files=0, max_fields=4, max_part_size=4096) as form:
                token, next_path = str(form.get("token") or ""), _local(str(form.get("next") or "/"))
        try:
            cookie = await run_in_threadpool(sessions.login, ctx.store, token.strip())
        except HttpError as refused:  # 401 not a token, 403 a token of another role
            return _html(layout.login_page("That token cannot read the fleet.", next_path), refused.status)
        response = RedirectResponse(next_path, 303, headers=layout.HEADERS)
        sessions.set_cookie(response, request, cookie)
        return response

    async def logout(request: Request) -> Response:
        viewer = await who(request)
        if viewer is not None:
            with body_deadline(ctx.settings.limits.max_seconds):
                async with request.form(max_files=0, max_fields=2, max_part_size=1024) as form:
                    sessions.check_csrf(request, viewer, str(form.get("csrf") or ""))
            await run_in_threadpool(sessions.logout, request, ctx.store)
        response = RedirectResponse("/login", 303, headers=layout.HEADERS)
        sessions.clear_cookie(response, request)
        return response

    async def favicon(_request: Request) -> Response:
        return Response(None, 204, headers={"Cache-Control": "max-age=86400"})

    async def stylesheet(request: Request) -> Response:
        if request.headers.get("if-none-match") == layout.CSS_ETAG:
            return Response(None, 304, headers={"ETag": layout.CSS_ETAG})
        return Response(
            layout.CSS,
            media_type="text/css",
            headers={"ETag": layout.CSS_ETAG, "Cache-Control": "max-age=3600"},
        )

    return [
        Route("/", overview, methods=["GET"]),
        Route("/devices", devices, methods=["GET"]),
        Route("/devices/{device_id:anypath}", device, methods=["GET"]),  # (anypath: see app.py)
        Route("/device", device, methods=["GET"]),  # (?id=: see layout.device_link)
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/static/dashboard.css", stylesheet, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
    ]


def _overview(
    store: Store, now: datetime, at: datetime | None, organization: Organization, stale_after: timedelta
) -> str:
    now = now.replace(microsecond=0)
    instant = at or now  # (the chart's last point is the instant the figures are of, to the microsecond)
    summary = store.summary(now=now, at=at, organization=organization, stale_after=stale_after)
    everyone = (
        summary
        if organization is None
        else store.summary(now=now, at=at, organization=None, stale_after=stale_after)
    )
    # (a trend as of year 1 starts on its first day: nothing is before it)
    start = earlier(instant, timedelta(days=TREND_DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    steps = history_steps(start, instant, timedelta(days=1), TREND_DAYS + 2)
    points = store.history(steps, organization=organization, stale_after=stale_after)
    if at is None:  # the last point is now: the figures above it (which count a decision made within
        # this second, or dated a little ahead of this server's clock, as the history does not yet)
        points[-1] = {**points[-1], **{key: summary[key] for key in points[-1] if key != "at"}}
    rollouts = (  # (status keeps no history: a past instant's rollout is not known)
        [r for name in sorted(store.bundle_names()) if (r := store.rollout(name, organization)) is not None]
        if at is None
        else None
    )
    stale = store.stale_devices(
        now=instant, stale_after=stale_after, limit=STALE_LISTED, organization=organization, at=at
    )
    named = {*everyone["by_organization"], *([organization] if isinstance(organization, str) else [])}
    return pages.overview(
        summary,
        points,
        rollouts,
        stale,
        at=iso(at) if at else None,
        organization=organization,
        organizations=sorted(named - {NO_ORGANIZATION_KEY}),
        orgless=NO_ORGANIZATION_KEY in everyone["by_organization"] or organization is NO_ORGANIZATION,
    )
