"""Request bodies, bounded: at most ``max_body`` bytes on the wire and ``max_decoded`` after
gzip, refused (413) as soon as either is passed, so a gzip bomb costs no more than the bounds;
received within ``max_seconds`` from the first read, or refused (408), so a body dripped a byte at
a time, or shorter than its Content-Length, holds a connection no longer than that.
Then strict JSON: UTF-8, no duplicate keys, no NaN/Infinity, bounded nesting (400 otherwise)."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import Any, cast

import anyio
import orjson
from isal import isal_zlib as zlib  # zlib's interface, inflating about twice as fast
from starlette.requests import Request

from pyagent.jsonio import DuplicateKeyError, unique_keys
from pyagent.server.errors import HttpError, bad_request, too_large

MiB = 1024 * 1024
#: isal's stub declares its error an instance; it is the exception class zlib's ``error`` is
_InflateError = cast("type[Exception]", zlib.error)


@dataclass(frozen=True)
class BodyLimits:
    max_body: int = 32 * MiB
    max_decoded: int = 64 * MiB
    max_seconds: float = 120.0


@dataclass(frozen=True)
class RawBody:
    """A request's body as received (bounded on the wire), not yet decompressed."""

    data: bytes
    gzip: bool

    def decoded(self, limits: BodyLimits) -> bytes:
        """The body after gzip, in one pass under ``max_decoded`` (413 past it, 400 if not gzip):
        CPU work, so :mod:`pyagent.server.logs` does it in a worker thread, off the event loop."""
        if not self.gzip:
            if len(self.data) > limits.max_decoded:
                raise too_large(f"body is over the limit of {limits.max_decoded} bytes")
            return self.data
        gunzip = _Gunzip(limits.max_decoded)
        body = gunzip.feed(self.data)
        gunzip.finish()
        return body


#: A JSON body's content types: JSON's, none, and the form type that ``curl -d`` sends by default (the
#: body is read as JSON whatever it says; no browser form reaches these routes without a bearer token).
JSON_MEDIA_TYPES = ("application/json", "", "application/x-www-form-urlencoded")


async def receive_body(request: Request, limits: BodyLimits, *, json_only: bool = True) -> RawBody:
    """The body of ``request`` as sent, or an :class:`HttpError` (413, 415)."""
    if json_only:
        media, parameters = _media_type(request.headers.get("content-type", ""))
        if media not in JSON_MEDIA_TYPES:
            raise HttpError(
                415, "unsupported_media_type", f"content type {media!r}: expected application/json"
            )
        charset = parameters.get("charset", "utf-8")
        if charset not in ("utf-8", "utf8"):  # JSON is UTF-8 (RFC 8259); another charset would be misread
            raise HttpError(415, "unsupported_media_type", f"charset {charset!r}: JSON is UTF-8")
    framing = request.headers.get("transfer-encoding")
    if framing is not None and framing.strip().lower() != "chunked":
        # (the HTTP parser takes a last "chunked" as the framing and ignores the codings before it,
        # which would be read as the body's own bytes; RFC 9112 section 6.1: 501 for a coding not known)
        raise HttpError(
            501, "not_implemented", f"transfer coding {framing!r}: only chunked is understood", close=True
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limits.max_body:
        raise too_large(f"body of {declared} bytes is over the limit of {limits.max_body} bytes")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    encoding = "gzip" if encoding == "x-gzip" else encoding  # the same (RFC 9110, section 8.4.1.3)
    if encoding not in ("gzip", "identity", ""):
        raise HttpError(
            415, "unsupported_media_type", f"content encoding {encoding!r}: expected gzip or identity"
        )
    received = 0
    parts: list[bytes] = []
    with body_deadline(limits.max_seconds):
        async for chunk in request.stream():
            received += len(chunk)
            if received > limits.max_body:
                raise too_large(f"body is over the limit of {limits.max_body} bytes")
            parts.append(chunk)
    return RawBody(b"".join(parts), encoding == "gzip")


@contextlib.contextmanager
def body_deadline(seconds: float) -> Iterator[None]:
    """Whatever reads a body inside runs for at most ``seconds``; then 408 (the connection is closed)."""
    try:
        with anyio.fail_after(seconds):
            yield
    except TimeoutError:
        message = f"body not received within {seconds:g} seconds"
        raise HttpError(408, "request_timeout", message, close=True) from None


async def capped_stream(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """``request``'s body as it arrives, 413 as soon as it is over ``limit`` bytes."""
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large(f"body is over the limit of {limit} bytes")
        yield chunk


async def read_body(request: Request, limits: BodyLimits, *, json_only: bool = True) -> bytes:
    """The decoded body of ``request``, or an :class:`HttpError` (400, 413, 415)."""
    return (await receive_body(request, limits, json_only=json_only)).decoded(limits)


def _media_type(header: str) -> tuple[str, dict[str, str]]:
    """A Content-Type's media type and parameters, lower-cased (``text/plain; charset="x"``)."""
    media, *pairs = header.lower().split(";")
    parameters = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        parameters[name.strip()] = value.strip().strip('"')
    return media.strip(), parameters


class _Gunzip:
    """Incremental gzip (several members allowed, as the format does) under an output budget."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.produced = 0
        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.started = False

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        if data and not self.started:
            _check_header(data)
        while data:
            self.started = True
            try:
                piece = self.inflater.decompress(data, self.budget - self.produced + 1)
            except _InflateError as err:
                raise bad_request(f"body is not valid gzip: {err}") from err
            self.produced += len(piece)
            if self.produced > self.budget:
                raise too_large(f"body is over the limit of {self.budget} bytes after decompression")
            out.append(piece)
            if self.inflater.unconsumed_tail:
                data = self.inflater.unconsumed_tail
            elif self.inflater.eof and self.inflater.unused_data:
                data = self.inflater.unused_data
                _check_header(data, "body has data after its gzip stream that is not gzip")
                self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                data = b""
        return b"".join(out)

    def finish(self) -> None:
        if not self.started:
            raise bad_request("body is empty gzip")
        if not self.inflater.eof:
            raise bad_request("body is truncated gzip (the stream ends before its end marker)")


def _check_header(data: bytes, message: str = "body is not valid gzip: invalid header") -> None:
    """A gzip member's magic, method (deflate) and flags (reserved bits clear, RFC 1952)."""
    if data[:3] != b"\x1f\x8b\x08"[: len(data)] or (len(data) > 3 and data[3] & 0xE0):
        raise bad_request(message)


ESCAPED_COLON = re.compile(rb"\\u003[aA]")

#: Parsed JSON costs memory per value, most per object or array: an empty object is 3 bytes of
#: body and 60-250 bytes of Python objects once parsed, so a body of them swells ~80x (a 64 KB gzip
#: of ``[{},{},...]`` took 7.5 GB). Bodies are bounded in objects and arrays, and in values and
#: keys, before they are parsed (see docs/server.md for what that costs at the bounds). A batch of
#: real events is far below them: a 200-app report has ~210 objects and arrays and ~2,000 values
#: and keys, so the bounds are met only past ``max_decoded`` (64 MiB) of such events.
MAX_CONTAINERS = 500_000
MAX_VALUES = 2_000_000


#: Every byte but the four that :func:`check_json_size` counts.
_NOT_COUNTED = bytes(sorted(set(range(256)) - set(b"{[,:")))
_COUNT_CHUNK = 256 * 1024


def check_json_size(body: bytes) -> None:
    """413 unless ``body`` holds at most :data:`MAX_CONTAINERS` objects and arrays and
    :data:`MAX_VALUES` values and keys, counted from above (brackets, braces, commas and colons,
    in strings too).

    One pass keeps those four bytes of each chunk (``translate``) and counts them there: a third of
    the time of four ``count`` passes over the body (a 100-event batch of 200-app reports, 3.7 MB:
    1.7 ms instead of 5.1), with at most a chunk's copy alive."""
    containers = kept = 0
    for start in range(0, len(body), _COUNT_CHUNK):
        structural = body[start : start + _COUNT_CHUNK].translate(None, _NOT_COUNTED)
        containers += structural.count(b"{") + structural.count(b"[")
        kept += len(structural)
    if containers > MAX_CONTAINERS:
        raise too_large(f"body has over {MAX_CONTAINERS} JSON objects and arrays")
    if kept + 1 > MAX_VALUES:  # (a value per comma or colon, one more; and each object or array)
        raise too_large(f"body has over {MAX_VALUES} JSON values and keys")


def parse_json(body: bytes) -> Any:
    """``body`` as JSON, strictly (see the module doc).

    Fast path: orjson, then a duplicate-key check without a second parse. orjson keeps the last of
    two equal keys; re-encoding the result drops the other key, its colon and every colon in its
    value. So a document without ``\\u003a`` escapes has a duplicate key exactly when it has more
    colons than its re-encoding (a colon is structural or inside a string, and orjson writes string
    colons literally). Documents with such escapes take the slow, exact path.
    """
    if not body.strip():
        raise bad_request("body is empty")
    check_json_size(body)
    if ESCAPED_COLON.search(body):  # before orjson: one parse alive at a time
        return _parse_exact(body)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise bad_request(f"body is not valid JSON: {err}") from err
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:  # nesting of 255 levels or more (orjson parses 1,024): the exact path
        return _parse_exact(body)
    if body.count(b":") != encoded.count(b":"):
        _parse_exact(body)  # raises, naming the key
        raise bad_request("body has a duplicate key")  # pragma: no cover - the exact parse raises
    return value


def _parse_exact(body: bytes) -> Any:
    import json

    try:
        value = json.loads(
            body, object_pairs_hook=unique_keys, parse_constant=_no_constant, parse_float=_finite
        )
        # a lone surrogate escape (\ud800) is no Unicode text: orjson refuses it, so does this path
        # (stored, it made every later read of the device a 500); Go's JSON, so OPA, never writes one
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except DuplicateKeyError as err:
        raise bad_request(f"body has a {err}") from err
    except UnicodeEncodeError as err:
        raise bad_request("body is not valid JSON: a lone surrogate escape (\\ud800-\\udfff)") from err
    except (ValueError, RecursionError) as err:
        raise bad_request(f"body is not valid JSON: {err}") from err
    return value


def _finite(token: str) -> float:
    """A JSON number as the fast path reads it: ``1e400`` is refused (it was infinity, stored as null)."""
    value = float(token)
    if math.isinf(value):
        raise ValueError(f"number {token[:40]} is infinity when parsed as double")
    return value


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")
