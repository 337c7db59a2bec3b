"""The JSON API under ``/api/v1``: publishing (admins) and the fleet's state (readers).

The fleet views (summary, device lists, history, rollout) are CONTRACT section 8 and grow here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pyagent.server.context import ServerContext
from pyagent.server.errors import HttpError, bad_request, too_large
from pyagent.server.publish import MAX_BUNDLE_BYTES, publish
from pyagent.server.store.base import DeviceState

MAX_HISTORY = 1000


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def device_json(state: DeviceState) -> dict[str, Any]:
    status = dict(state.status) if state.status else None
    if status is not None:
        status["last_seen"] = _iso(status["last_seen"])
    return {
        "device_id": state.device_id,
        "organization": state.organization,
        "platform": state.platform,
        "allow": state.allow,
        "decision_id": state.decision_id,
        "decided_at": _iso(state.decided_at),
        "sender": state.sender,
        "decision": state.result,
        "bundles": state.bundles,
        "last_seen": _iso(state.last_seen),
        "status": status,
        "history": [{**h, "decided_at": _iso(h["decided_at"])} for h in state.history],
    }


def routes(ctx: ServerContext) -> list[Route]:
    async def put_bundle(request: Request) -> Response:
        who = await ctx.authorize(request, "admin")
        name = request.path_params["name"]
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > 2 * MAX_BUNDLE_BYTES + 65536:
            raise too_large(f"a publish is at most two bundles of {MAX_BUNDLE_BYTES} bytes")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise HttpError(415, "unsupported_media_type", "send the bundles as multipart/form-data files")
        async with request.form(max_files=2, max_fields=0, max_part_size=MAX_BUNDLE_BYTES) as form:
            archives = []
            for key, upload in form.multi_items():
                if isinstance(upload, str):
                    raise bad_request(f"form field {key!r}: expected a bundle file")
                archives.append((upload.filename or key, await upload.read(MAX_BUNDLE_BYTES + 1)))
        if any(len(raw) > MAX_BUNDLE_BYTES for _, raw in archives):
            raise too_large(f"a bundle is at most {MAX_BUNDLE_BYTES} bytes")
        done = await run_in_threadpool(
            publish, ctx.store, name, archives, verification=ctx.verification, published_by=f"api ({who})"
        )
        return JSONResponse(
            {"name": done.name, "revision": done.revision, "serial": done.serial, "signed": done.signed,
             "targets": list(done.targets), "revision_id": done.revision_id, "note": done.note},
            status_code=201,
        )  # fmt: skip

    async def get_device(request: Request) -> Response:
        await ctx.authorize(request, "reader")
        history = request.query_params.get("history", "100")
        if not history.isdigit():
            raise bad_request(f"history={history!r}: expected a number of decisions")
        state = await run_in_threadpool(
            ctx.store.device, request.path_params["device_id"], history=min(int(history), MAX_HISTORY)
        )
        if state is None:
            raise HttpError(
                404,
                "device_not_found",
                f"no decision is stored for device {request.path_params['device_id']!r}",
            )
        return JSONResponse(device_json(state))

    return [
        Route("/api/v1/bundles/{name}", put_bundle, methods=["PUT"]),
        Route("/api/v1/devices/{device_id}", get_device, methods=["GET"]),
    ]
