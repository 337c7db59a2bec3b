"""The fleet JSON API (CONTRACT section 8), for readers: summary (now or ``?at=``), device pages,
a device's state and history, access gating, rollout per bundle, history for charts, CSV exports."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pyagent.server import query
from pyagent.server.context import ServerContext
from pyagent.server.errors import HttpError, bad_request, catch_all, no_route
from pyagent.server.exports import devices_csv, summary_csv
from pyagent.server.store.base import DeviceState, Organization, Store
from pyagent.server.store.fleet import DeviceFilter, earlier, iso
from pyagent.server.store.history import history_steps

MAX_PAGE = 1000
MAX_STEPS = 1000
#: What ``GET /api/v1/devices`` reads (any other parameter is a 400).
DEVICE_PARAMETERS = (
    "organization",
    "no_organization",
    "platform",
    "allow",
    "compliant",
    "stale",
    "ban",
    "cursor",
    "limit",
    "format",
)
EXPORT_LIMIT = 1_000_000
DEVICES = "/api/v1/devices/"
#: Every method a client may send (RFC 9110's, and PATCH): the API's catch-all answers each.
ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]


def _csv(text: str, name: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def device_json(state: DeviceState, stale_after: timedelta, now: datetime) -> dict[str, Any]:
    stale = state.decided_at < now - stale_after
    status = dict(state.status) if state.status else None
    if status is not None:
        status["last_seen"] = iso(status["last_seen"])
    return {
        "device_id": state.device_id,
        "organization": state.organization,
        "platform": state.platform,
        "compliant": state.allow is True and not stale,
        "allow": state.allow,
        "verdict": state.verdict,
        "verdict_since": iso(state.verdict_since) if state.verdict_since else None,
        "stale": stale,
        "decision_id": state.decision_id,
        "decided_at": iso(state.decided_at),
        "sender": state.sender,
        "decision": state.result,
        "bundles": state.bundles,
        "last_seen": iso(state.last_seen),
        "status": status,
        # (received_at: when the server stored it; a decision uploaded late, or dated back, shows it)
        "history": [
            {**h, "decided_at": iso(h["decided_at"]), "received_at": iso(h["received_at"])}
            for h in state.history
        ],
        "history_truncated": state.history_truncated,
        "chain": state.chain,
    }


def compliance(
    store: Store, device_id: str, now: datetime, stale_after: timedelta, at: datetime | None = None
) -> dict[str, Any]:
    """For access gating: an unknown, stale or non-compliant device is not compliant. The keys are the
    contract's five exactly (an unknown device: ``decision_id`` and ``as_of`` null). With ``at``, as of
    that instant: the device's decision that held then, stale by then or not (an audit of a past
    access)."""
    state = store.device(device_id) if at is None else store.decision_at(device_id, at)
    now = now if at is None else at
    if state is None:
        return {
            "device_id": device_id,
            "compliant": False,
            "stale": False,
            "as_of": None,
            "decision_id": None,
        }
    stale = state.decided_at < earlier(now, stale_after)  # (at= in year 1: nothing is stale yet)
    return {
        "device_id": device_id,
        "compliant": state.allow is True and not stale,
        "stale": stale,
        "as_of": iso(state.decided_at),
        "decision_id": state.decision_id,
    }


def routes(ctx: ServerContext, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> list[Route]:
    stale_after = timedelta(seconds=ctx.settings.stale_after_seconds)

    def filters(request: Request) -> DeviceFilter:
        return DeviceFilter(
            organization=query.organization(request),
            platform=query.text(request, "platform", 32),
            allow=query.flag(request, "allow"),
            compliant=query.flag(request, "compliant"),
            stale=query.flag(request, "stale"),
            ban=query.text(request, "ban", 200),
            cursor=query.cursor(request),
            limit=query.number(request, "limit", 100, 1, MAX_PAGE),
        )

    async def summary(request: Request) -> Response:
        await ctx.authorize(request, "reader")
        query.only(request, "at", "organization", "no_organization", "format")
        at = query.instant(request, "at")
        organization = query.organization(request)
        fmt = query.output_format(request, "csv")
        result = await ctx.read(
            ctx.store.summary, now=clock(), at=at, organization=organization, stale_after=stale_after
        )
        result["stale_after_seconds"] = ctx.settings.stale_after_seconds
        return _csv(summary_csv(result), "summary.csv") if fmt == "csv" else JSONResponse(result)

    async def device_list(request: Request) -> Response:
        await ctx.authorize(request, "reader")
        query.only(request, *DEVICE_PARAMETERS)
        wanted = filters(request)
        if query.output_format(request, "csv") == "csv":
            every = await ctx.read(_all_devices, ctx.store, wanted, clock(), stale_after)
            return _csv(devices_csv(every), "devices.csv")
        page, last = await ctx.read(ctx.store.device_page, wanted, now=clock(), stale_after=stale_after)
        return JSONResponse({"devices": page, "next_cursor": query.encode_cursor(last)})

    async def device(request: Request, device_id: str | None = None) -> Response:
        await ctx.authorize(request, "reader")
        device_id = request.path_params["device_id"] if device_id is None else device_id
        query.only(request, "history")
        history = query.number(request, "history", 100, 0, 10_000)
        state = await ctx.read(functools.partial(ctx.store.device, device_id, history=history, since=True))
        if state is None:
            raise HttpError(404, "device_not_found", f"no decision is stored for device {device_id!r}")
        return JSONResponse(device_json(state, stale_after, clock()))

    async def device_compliance(request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        path = request.scope["path"]
        if not raw_path.split(b"?")[0].endswith(b"/compliance") or not path.endswith("/compliance"):
            # ".../a%2Fcompliance": the id is "a/compliance" (its slash escaped), not device a's gate;
            # ".../a/compliance%0A": the id is "a/compliance\n" (a route's "$" lets a last newline by)
            return await device(
                request, request.path_params["device_id"] + path[path.rindex("/compliance") :]
            )
        await ctx.authorize(request, "reader")
        query.only(request, "at")
        at = query.instant(request, "at")
        answer = await ctx.read(
            compliance, ctx.store, request.path_params["device_id"], clock(), stale_after, at
        )
        return JSONResponse(answer)

    async def rollout(request: Request) -> Response:
        await ctx.authorize(request, "reader")
        name = request.path_params["name"]
        query.only(request, "organization", "no_organization")
        organization = query.organization(request)
        result = await ctx.read(ctx.store.rollout, name, organization)
        if result is None:
            raise HttpError(404, "bundle_not_found", f"bundle {name!r} was never published")
        return JSONResponse(result)

    async def history(request: Request) -> Response:
        await ctx.authorize(request, "reader")
        query.only(request, "from", "to", "step", "organization", "no_organization")
        start, end = query.instant(request, "from"), query.instant(request, "to")
        step = query.duration(request, "step")
        if start is None or end is None or step is None:
            raise bad_request("history needs from, to (RFC 3339) and step (e.g. 1h)")
        if end < start:
            raise bad_request(f"history: from ({iso(start)}) is after to ({iso(end)})")
        try:
            steps = history_steps(start, end, step, MAX_STEPS)
        except ValueError as err:
            raise bad_request(f"history: {err}") from err
        organization = query.organization(request)
        points = await ctx.read(_points, ctx.store, steps, organization, stale_after)
        return JSONResponse(
            {"from": iso(start), "to": iso(end), "step_seconds": int(step.total_seconds()), "points": points}
        )

    async def openapi(request: Request) -> Response:
        from pyagent.server.openapi import document

        await ctx.authorize(request, "reader")
        query.only(request)  # as every API route: a parameter it does not read is a 400
        return JSONResponse(document())

    async def no_such_route(request: Request) -> Response:
        raise no_route(request)

    return [
        Route("/api/v1/openapi.json", openapi, methods=["GET"]),
        Route("/api/v1/summary", summary, methods=["GET"]),
        Route("/api/v1/devices", device_list, methods=["GET"]),
        # ids may hold slashes and line breaks (anypath: see app.py); the compliance route is tried
        # first, for a literal "/compliance"
        Route(DEVICES + "{device_id:anypath}/compliance", device_compliance, methods=["GET"]),
        Route(DEVICES + "{device_id:anypath}", device, methods=["GET"]),
        Route("/api/v1/rollout/{name}", rollout, methods=["GET"]),
        Route("/api/v1/history", history, methods=["GET"]),
        # last: the API's own 404, as JSON, for any method (a wrong one on a route included: its 405
        # then names the route's methods alone, never this one's)
        Route("/api/v1/{rest:anypath}", catch_all(no_such_route), methods=ANY_METHOD),
    ]


def _points(
    store: Store, steps: list[datetime], organization: Organization, stale_after: timedelta
) -> list[Any]:
    return store.history(steps, organization=organization, stale_after=stale_after)


def _all_devices(
    store: Store, wanted: DeviceFilter, now: datetime, stale_after: timedelta
) -> list[dict[str, Any]]:
    every: list[dict[str, Any]] = []
    page_filter = DeviceFilter(**{**wanted.__dict__, "limit": MAX_PAGE})
    while len(every) < EXPORT_LIMIT:
        page, last = store.device_page(page_filter, now=now, stale_after=stale_after)
        every.extend(page)
        if last is None:
            break
        page_filter = DeviceFilter(**{**page_filter.__dict__, "cursor": last})
    return every
