"""OPA's Decision Log API: ``POST /logs``, a JSON array of events, gzip or identity.

2xx only after the whole batch is committed; an event already stored (same ``decision_id`` at the
same instant) is stored once; a malformed event refuses the whole batch (400, nothing stored,
the message names the event's index and field); the body is bounded on the wire and after gzip (413).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pyagent.server.body import parse_json, read_body
from pyagent.server.context import ServerContext
from pyagent.server.events import Batch, parse_batch
from pyagent.server.store.base import IngestResult


def routes(ctx: ServerContext) -> list[Route]:
    def decode(body: bytes) -> Batch:
        return parse_batch(parse_json(body), ctx.store.bundle_names())

    def ingest(body: bytes) -> IngestResult:
        batch = decode(body)  # CPU work and the store in one worker thread, off the event loop
        return ctx.store.ingest(batch.rows, batch.reports)

    async def logs(request: Request) -> Response:
        await ctx.authorize(request, "agent")
        body = await read_body(request, ctx.settings.limits)
        result = await run_in_threadpool(ingest, body)
        return JSONResponse({"stored": result.stored, "duplicates": result.duplicates})

    return [Route("/logs", logs, methods=["POST"])]
