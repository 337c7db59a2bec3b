"""Publishing over the API: ``PUT /api/v1/bundles/{name}`` for admins. The body is the bundles of one
revision as ``multipart/form-data`` files (the rego build, the wasm build, or both), or one bundle
as it is (``Content-Type: application/gzip`` or ``application/vnd.openpolicyagent.bundles``, OPA's
bundle media type). Either way a bundle's target is read from its contents, as the command line
does: a ``policy.wasm`` makes it the wasm build, ``.rego`` files the rego build.

The body is bounded on the wire by ``--max-body``, as every body the server reads, and each bundle in it
by ``MAX_BUNDLE_BYTES``."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pyagent.server.body import body_deadline, capped_stream
from pyagent.server.context import ServerContext
from pyagent.server.errors import HttpError, bad_request, too_large
from pyagent.server.publish import MAX_BUNDLE_BYTES, publish

#: A body that is one bundle: gzip, or OPA's bundle media type (what its Bundle API serves).
BUNDLE_MEDIA_TYPES = ("application/gzip", "application/vnd.openpolicyagent.bundles")
#: Also taken as one bundle: no type, bytes, gzip's older name, and the form type of `curl --data-binary`
#: (what HTTP clients send by default; the route takes a bearer token only, so no browser form reaches it).
RAW_MEDIA_TYPES = ("", "application/octet-stream", "application/x-gzip", "application/x-www-form-urlencoded")


def routes(ctx: ServerContext) -> list[Route]:
    async def put_bundle(request: Request) -> Response:
        who = await ctx.authorize(request, "admin")
        name = request.path_params["name"]
        limits = ctx.settings.limits
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limits.max_body:
            raise too_large(f"body of {declared} bytes is over the limit of {limits.max_body} bytes")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media in BUNDLE_MEDIA_TYPES or media in RAW_MEDIA_TYPES:
            cap = min(limits.max_body, MAX_BUNDLE_BYTES)
            archives = [("body", await _one_bundle(request, cap, limits.max_seconds))]
        elif media == "multipart/form-data":
            archives = await _form_bundles(request, limits.max_body, limits.max_seconds)
        else:
            raise HttpError(
                415,
                "unsupported_media_type",
                f"content type {media!r}: send the bundles as multipart/form-data files, or one bundle "
                f"as {' or '.join(BUNDLE_MEDIA_TYPES)}",
            )
        if any(len(raw) > MAX_BUNDLE_BYTES for _, raw in archives):
            raise too_large(f"a bundle is at most {MAX_BUNDLE_BYTES} bytes")
        by = f"api ({who.role})"
        done = await run_in_threadpool(
            publish, ctx.store, name, archives, verification=ctx.verification, published_by=by
        )
        return JSONResponse(
            {
                "name": done.name,
                "revision": done.revision,
                "serial": done.serial,
                "signed": done.signed,
                "targets": list(done.targets),
                "revision_id": done.revision_id,
                "note": done.note,
                "stored": done.stored,
            },
            status_code=201 if done.stored else 200,
        )

    return [
        Route("/api/v1/bundles/{name}", put_bundle, methods=["PUT"]),
    ]


async def _one_bundle(request: Request, cap: int, max_seconds: float) -> bytes:
    """A raw body: one bundle, read from a stream capped at ``cap`` bytes under the body deadline."""
    chunks = []
    with body_deadline(max_seconds):
        async for chunk in capped_stream(request, cap):
            chunks.append(chunk)
    return b"".join(chunks)


async def _form_bundles(request: Request, cap: int, max_seconds: float) -> list[tuple[str, bytes]]:
    """The file parts of a multipart body (at most ``cap`` bytes), (file name, bytes) each."""
    # Parsed from a capped stream, under the body deadline: file parts are spooled to disk, so
    # without the cap a chunked upload (no Content-Length) could fill it.
    stream = capped_stream(request, cap)
    parser = MultiPartParser(
        request.headers, stream, max_files=2, max_fields=0, max_part_size=MAX_BUNDLE_BYTES
    )
    try:
        with body_deadline(max_seconds):
            form = await parser.parse()
    except MultiPartException as err:
        raise HttpError(400, "invalid_parameter", f"multipart body: {err.message}", close=True) from None
    try:
        archives = []
        for key, upload in form.multi_items():
            if isinstance(upload, str):
                raise bad_request(f"form field {key!r}: expected a bundle file")
            archives.append((upload.filename or key, await upload.read(MAX_BUNDLE_BYTES + 1)))
    finally:
        await form.close()
    return archives
