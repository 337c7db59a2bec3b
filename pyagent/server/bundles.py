"""OPA's Bundle API: ``GET /bundles/{name}`` (the Rego build, for OPA) and ``GET /bundles/{name}/wasm``
(the same revision compiled for agents), with ``ETag`` / ``If-None-Match`` → 304, and long polling:
``Prefer: wait=N`` holds a request whose ETag is current until a newer revision or N seconds. Every
answer says ``Content-Type: application/vnd.openpolicyagent.bundles``: that is how OPA learns that the
service long-polls, from whichever bundle answer it gets (its first request never waits; given
``application/gzip`` there, it never long-polled).

A held request costs nothing while it waits: it reads the store again only when the notifier says a
bundle changed (:mod:`pyagent.server.notify`), or every :data:`RECHECK_SECONDS` in case a wake-up was
missed; between those it only checks, once a second, that its client is still there. (It once read
the store every second: 2,000 held polls took a whole core.) After a wait its token is checked again
(one revoked meanwhile gets a 401, not the new bundle), and when the process begins its graceful
shutdown a held request answers 304 within a second (:data:`~pyagent.server.notify.DRAINING`), so
that its client asks again, another replica behind a load balancer, rather than get a 500 when the
grace period ends."""

from __future__ import annotations

import asyncio
import re
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pyagent.server.context import ServerContext
from pyagent.server.errors import HttpError
from pyagent.server.notify import DRAINING
from pyagent.server.protocol import held_poll_limit

LONG_POLL_TYPE = "application/vnd.openpolicyagent.bundles"
_SECONDS = re.compile(r"[0-9]+")
#: How long a held request trusts the notifier before it reads the store again anyway.
RECHECK_SECONDS = 30.0


#: One piece of a ``Prefer`` header: a ``name[=value]`` up to a ``,`` or ``;`` outside quotes; a value
#: quoted (RFC 7240's quoted-string, escapes allowed) or a token. A piece that is neither ends the read.
_PIECE = re.compile(r'\s*([^=,;\s"]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,;\s"]*))?\s*(?:[,;]|\Z)')


def prefer_wait(request: Request, limit: int) -> int | None:
    """Seconds from the first ``wait`` of the ``Prefer`` headers (capped at ``limit``), or None without
    one. Read as RFC 7240 writes preferences (separated by commas, the name in any case, spaces around
    ``=``, the value maybe quoted, a quoted string's commas and semicolons its own), and as OPA sends it,
    a parameter of another preference (``modes=snapshot,delta;wait=N``); one that is no whole number of
    seconds asks for no wait, and a header that does not parse for none."""
    for header in request.headers.getlist("prefer"):
        at = 0
        while at < len(header):
            if header[at] in ",; \t":  # (an empty element, which RFC 9110 has a recipient pass over)
                at += 1
                continue
            piece = _PIECE.match(header, at)
            if piece is None or piece.end() == at:
                break
            at = piece.end()
            name, value = piece.group(1), piece.group(2)
            if name.lower() != "wait" or value is None:
                continue
            seconds = value[1:-1] if value.startswith('"') else value
            if not _SECONDS.fullmatch(seconds):
                return None
            seconds = seconds.lstrip("0") or "0"
            return limit if len(seconds) > 12 else min(int(seconds), limit)  # (no long run read whole)
    return None


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    wanted = etag.strip('"')
    return any(tag.strip().removeprefix("W/").strip('"') in (wanted, "*") for tag in header.split(","))


async def _held(ctx: ServerContext, request: Request, changed: asyncio.Event, deadline: float) -> bool:
    """Hold a long poll until a bundle may have changed (True: read the store again) or its wait ends,
    its client goes away or the process shuts down (False: answer 304), counted in ``ctx.held_polls``."""
    ctx.held_polls += 1
    try:
        recheck = time.monotonic() + RECHECK_SECONDS
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:  # the wait ended: a token revoked meanwhile gets its 401 now
                await ctx.authorize(request, "agent")
                return False
            # in slices, so that a client that went away frees its request (and a shutdown is quick)
            if await ctx.notifier.wait(changed, min(remaining, 1.0)):
                return True  # a bundle changed: read the store again
            if DRAINING.is_set() or await request.is_disconnected():  # shutting down, or nobody left
                return False
            if time.monotonic() >= recheck:
                return True
    finally:
        ctx.held_polls -= 1


def routes(ctx: ServerContext) -> list[Route]:
    async def bundle(request: Request) -> Response:
        await ctx.authorize(request, "agent")
        name = request.path_params["name"]
        target = "wasm" if request.url.path.endswith("/wasm") else "rego"
        wait = prefer_wait(request, ctx.settings.max_long_poll_seconds)
        deadline = time.monotonic() + (wait or 0)
        content_type = LONG_POLL_TYPE  # this service long-polls, whether this request asked to wait
        waited = False
        while True:
            changed = ctx.notifier.changed()  # taken before the read: a publish after it wakes us
            head = await ctx.call(ctx.store.bundle_head, name, target)
            if head is None:
                raise HttpError(404, "bundle_not_found", f"no {target} build of bundle {name!r} is published")
            headers = {"ETag": head.etag, "Cache-Control": "no-cache"}
            if not etag_matches(request.headers.get("if-none-match"), head.etag):
                if waited:  # a token revoked while the request was held gets no bundle
                    await ctx.authorize(request, "agent")
                content = await ctx.bundle_content(head.revision_id, target)
                return Response(content, 200, headers=headers, media_type=content_type)
            not_modified = Response(None, 304, headers={**headers, "Content-Type": content_type})
            if wait is None or DRAINING.is_set():
                return not_modified
            if wait and not waited and ctx.held_polls >= held_poll_limit():
                # Past the bound: the bundle, as a service that does not long poll sends it. A client
                # then polls every min..max_delay_seconds until a bundle answer says "long poll" again
                # (a new revision); a 304 would be its cue to ask again at once, and an error, in OPA,
                # to download the whole bundle 100 ms later, then long poll again.
                content = await ctx.bundle_content(head.revision_id, target)
                return Response(content, 200, headers=headers, media_type="application/gzip")
            if not await _held(ctx, request, changed, deadline):
                return not_modified
            waited = True

    return [
        Route("/bundles/{name}", bundle, methods=["GET"]),
        Route("/bundles/{name}/wasm", bundle, methods=["GET"]),
    ]
