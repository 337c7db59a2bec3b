"""OPA's Decision Log API: ``POST /logs``, a JSON array of events, gzip or identity.

2xx only after the whole batch is committed. An event whose ``decision_id`` is stored is stored
once, whatever its instant. Events on paths other than ``pyagent/decision`` (an OPA logs every
query), those on it whose input is not a device's (no report, no device id, no valid time), those
dated more than five minutes after they arrive, and those nested past what a parser takes (an OPA
logs inputs up to Go's 10,000 levels), are acknowledged and counted as ``ignored``.
A malformed event refuses the whole batch (400, nothing stored, the message names the event's index
and field), and so does an event about another device than the one a device-bound token reports
for (403); such a token's events are recorded as sent by its device, whatever their ``labels.id``.
The body is bounded on the wire and after gzip (413).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from anyio import CapacityLimiter, to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pyagent.logsetup import get_logger
from pyagent.server.arrival import drop_ahead, drop_fresh_what_ifs
from pyagent.server.auth import check_device
from pyagent.server.body import RawBody, receive_body
from pyagent.server.context import ServerContext
from pyagent.server.events import DECISION_PATH
from pyagent.server.heap import trim_heap
from pyagent.server.instants import MAX_ASKED_GAP
from pyagent.server.lazy_events import LazyBatch, decode_batch
from pyagent.server.store.base import Grant, IngestResult

log = get_logger("pyagent.server")


def routes(ctx: ServerContext) -> list[Route]:
    stale_after = timedelta(seconds=ctx.settings.stale_after_seconds)
    # Decoding is CPU work under the GIL: one batch at a time per process (more threads would only
    # take turns at the GIL); the store's work, mostly waiting for the database, runs beside it.
    decoding = CapacityLimiter(1)

    def decode(raw: RawBody, received: datetime, grant: Grant) -> LazyBatch:
        lazy = decode_batch(raw.decoded(ctx.settings.limits), ctx.report_cache)
        if grant.device is not None:  # every decision, before any is dropped as ignored or stored
            for row in lazy.batch.rows:
                check_device(grant, row.device_id, f"decision {row.decision_id!r}")
        ahead = drop_ahead(lazy.batch, received)
        fresh = drop_fresh_what_ifs(lazy.batch, received, stale_after)
        # the cache learns only reports this batch stores (not those of events ignored on the way)
        kept = {row.report_digest for row in lazy.batch.rows}
        lazy.pending = {key: known for key, known in lazy.pending.items() if known.digest in kept}
        if lazy.batch.unread:
            log.warning(
                "ignored %d decision-log event(s) nested too deep to read or holding a number out of a "
                "double's range",
                lazy.batch.unread,
            )
        if lazy.batch.unplaced:  # one line per batch, naming the first
            log.warning(
                "ignored %d decision(s) of %s whose input is not a device's report (input.at not RFC 3339, "
                "or no device id), e.g. %s",
                lazy.batch.unplaced,
                DECISION_PATH,
                lazy.batch.first_unplaced,
            )
        if what_ifs := [name for _, name in lazy.batch.what_ifs]:  # one line per batch, naming the first
            log.warning(
                "%d decision(s) asked about another instant than when they were made (input.at over %s "
                "from the event's timestamp: a replay or a what-if), taken at their input.at, stale "
                "already, e.g. %s",
                len(what_ifs),
                MAX_ASKED_GAP,
                what_ifs[0],
            )
        if fresh:
            log.warning(
                "ignored %d decision(s) asked about another instant than when they were made (input.at "
                "over %s from the event's timestamp: a what-if) and not stale yet, which could pass "
                "access gating, e.g. %s",
                len(fresh),
                MAX_ASKED_GAP,
                fresh[0],
            )
        if ahead:  # one line per batch, naming the first
            first = ahead[0]
            log.warning(
                "ignored %d decision(s) dated after their arrival at %s (e.g. %s of %r from %r at %s)",
                len(ahead),
                received.isoformat(),
                first.decision_id,
                first.device_id,
                first.sender,
                first.decided_at.isoformat(),
            )
        return lazy

    def store(lazy: LazyBatch) -> IngestResult:
        result = ctx.store.ingest(lazy.batch.rows, lazy.batch.reports)
        lazy.committed()
        trim_heap()
        return result

    async def logs(request: Request) -> Response:
        grant = await ctx.authorize(request, "agent")
        raw = await receive_body(request, ctx.settings.limits)
        received = datetime.now(UTC)
        lazy = await to_thread.run_sync(decode, raw, received, grant, limiter=decoding)
        if grant.device is not None:
            # sent by the token's device, whatever labels.id says (an OPA on the device: its instance id)
            lazy.batch.rows = [replace(row, sender=grant.device) for row in lazy.batch.rows]
        result = await ctx.call(store, lazy)
        payload = {"stored": result.stored, "duplicates": result.duplicates, "ignored": lazy.batch.ignored}
        return JSONResponse(payload)

    # an OPA with decision_logs.partition_name posts to /logs/PARTITION: the same receiver
    return [Route(path, logs, methods=["POST"]) for path in ("/logs", "/logs/{partition}")]
