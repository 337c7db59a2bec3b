"""OPA's Decision Log API: ``POST /logs``, a JSON array of events, gzip or identity.

2xx only after the whole batch is committed. An event already stored (same ``decision_id`` at the
same instant) is stored once. Events on paths other than ``pyagent/decision`` (an OPA logs every
query) are acknowledged and counted as ``ignored``. A malformed event refuses the whole batch (400,
nothing stored, the message names the event's index and field). The body is bounded on the wire and
after gzip (413).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pyagent.server.body import parse_json, read_body
from pyagent.server.context import ServerContext
from pyagent.server.errors import HttpError
from pyagent.server.events import Batch, parse_batch
from pyagent.server.store.base import IngestResult


def routes(ctx: ServerContext) -> list[Route]:
    def decode(body: bytes) -> Batch:
        value = parse_json(body)
        try:
            return parse_batch(value, ctx.known_bundles)
        except HttpError:  # perhaps a bundle published since: read the names again, then decide
            ctx.known_bundles = ctx.store.bundle_names()
            return parse_batch(value, ctx.known_bundles)

    def ingest(body: bytes) -> tuple[IngestResult, int]:
        batch = decode(body)  # CPU work and the store in one worker thread, off the event loop
        return ctx.store.ingest(batch.rows, batch.reports), batch.ignored

    async def logs(request: Request) -> Response:
        await ctx.authorize(request, "agent")
        body = await read_body(request, ctx.settings.limits)
        result, ignored = await run_in_threadpool(ingest, body)
        return JSONResponse({"stored": result.stored, "duplicates": result.duplicates, "ignored": ignored})

    return [Route("/logs", logs, methods=["POST"])]
