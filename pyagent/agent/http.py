"""HTTP for the agent's plug-ins: one request to a configured service, bounded in size and in time.

No redirect is followed (a 3xx is an answer like any other, which the plug-ins treat as an error);
every request has a total deadline, connection and body included; a body is read up to a limit (or
streamed to a file under it) and a longer one is refused while it arrives. The bearer token is read
from its file on every request, so a rotated token is used at once.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from pyagent import __version__
from pyagent.config.files import read_secret
from pyagent.config.opa import Service

CHUNK = 64 * 1024
MAX_ERROR_BODY = 16 * 1024


class Sink(Protocol):
    """Where a 2xx body is streamed: a binary file, or anything with ``write``."""

    def write(self, data: bytes, /) -> object: ...


class TransportError(Exception):
    """No complete answer: connection refused or reset, TLS failure, deadline passed. One line."""


class BodyTooLarge(TransportError):
    """The answer's body is over the limit; refused before or while it arrived."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes
    """The body, unless it was streamed to a sink."""
    size: int

    def message(self) -> str:
        """A one-line description of a non-2xx answer, with the server's ``message`` when it gave one."""
        import json

        detail = ""
        try:
            document = json.loads(self.body) if self.body else None
        except ValueError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("message"), str):
            detail = ": " + " ".join(document["message"].split())[:300]
        if 300 <= self.status < 400:
            where = self.headers.get("location", "?")[:200]
            return f"HTTP {self.status} redirect to {where} (redirects are not followed)"
        return f"HTTP {self.status}{detail}"


class ServiceClient:
    """Requests to one ``[services.NAME]``."""

    def __init__(self, service: Service) -> None:
        self.service = service
        parts = urlsplit(service.url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        self._base_path = parts.path.rstrip("/")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        """``scheme://host[:port]``: where every request of this client goes, whatever its path."""
        self._context: ssl.SSLContext | None = None
        if self._tls:
            cafile = str(service.ca_cert) if service.ca_cert else None
            self._context = ssl.create_default_context(cafile=cafile)

    def url(self, resource: str) -> str:
        return self.service.url + self.path(resource)

    def path(self, resource: str) -> str:
        if not resource:
            return self._base_path or "/"
        return f"{self._base_path}/{resource.lstrip('/')}"

    def request(
        self,
        method: str,
        resource: str,
        *,
        timeout: float,
        max_body: int,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        sink: Sink | None = None,
        exact_path: bool = False,
    ) -> Reply:
        """One request, finished within ``timeout`` seconds or :class:`TransportError`.

        A 2xx body goes to ``sink`` when one is given; every other body (an error message) is read
        up to 16 KiB. A body over ``max_body`` raises :class:`BodyTooLarge`. With ``exact_path``,
        ``resource`` is the request's path (and query) as it is, without the service URL's path. An
        ``Authorization`` in ``headers`` is sent instead of the service's bearer token.
        """
        deadline = time.monotonic() + timeout
        send = {"User-Agent": f"pyagent/{__version__}", **(headers or {})}
        if self.service.token_path is not None and "Authorization" not in send:
            token = read_secret(self.service.token_path, what=f"token of service {self.service.name}")
            send["Authorization"] = f"{self.service.scheme} {token}"
        path = resource if exact_path else self.path(resource)
        where = f"{method} {self.origin}{path}"
        conn: http.client.HTTPConnection
        if self._context is not None:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        watchdog = threading.Timer(timeout, _cut, (conn,))  # a server that dribbles headers is cut too
        watchdog.daemon = True
        try:
            conn.connect()
            watchdog.start()
            _bound(conn, deadline, where, timeout)
            conn.request(method, path, body=body, headers=send)
            _bound(conn, deadline, where, timeout)
            response = conn.getresponse()
            names = {k.lower(): v for k, v in response.getheaders()}
            ok = 200 <= response.status < 300
            limit = max_body if ok else MAX_ERROR_BODY
            declared = names.get("content-length", "")
            if ok and declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge(f"{where}: the answer is {declared} bytes, over the limit of {limit}")
            content, size = _read(conn, response, deadline, where, timeout, limit, sink if ok else None, ok)
            return Reply(response.status, names, content, size)
        except (OSError, http.client.HTTPException) as err:
            if time.monotonic() >= deadline:
                raise TransportError(f"{where}: no complete answer within {timeout:g} s") from err
            raise TransportError(f"{where}: {_describe(err, timeout)}") from err
        finally:
            watchdog.cancel()
            conn.close()


def backoff(failures: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after ``failures`` failures in a row: exponential from ``base``, capped at
    ``cap``, scaled by a random factor in [0.5, 1] so that a fleet does not retry in step."""
    exponent = min(max(failures - 1, 0), 30)
    return min(cap, base * float(1 << exponent)) * rng.uniform(0.5, 1.0)


def _cut(conn: http.client.HTTPConnection) -> None:
    """The deadline passed: end the connection, whatever the request is waiting for."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _bound(conn: http.client.HTTPConnection, deadline: float, where: str, timeout: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TransportError(f"{where}: no complete answer within {timeout:g} s")
    if conn.sock is not None:
        conn.sock.settimeout(remaining)


def _read(
    conn: http.client.HTTPConnection,
    response: http.client.HTTPResponse,
    deadline: float,
    where: str,
    timeout: float,
    limit: int,
    sink: Sink | None,
    ok: bool,
) -> tuple[bytes, int]:
    parts: list[bytes] = []
    size = 0
    while True:
        _bound(conn, deadline, where, timeout)
        chunk = response.read1(CHUNK) if hasattr(response, "read1") else response.read(CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            if not ok:  # an error's body: what arrived is enough to tell the error
                parts.append(chunk[: max(0, limit - (size - len(chunk)))])
                break
            raise BodyTooLarge(f"{where}: the answer is over the limit of {limit} bytes; refused")
        if sink is not None:
            sink.write(chunk)
        else:
            parts.append(chunk)
    return b"".join(parts), size


def _describe(err: BaseException, timeout: float) -> str:
    if isinstance(err, socket.timeout | TimeoutError):
        return f"no complete answer within {timeout:g} s"
    if isinstance(err, ssl.SSLError):
        return f"TLS failed: {err.reason or err}"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, http.client.IncompleteRead):
        return "the answer was cut short"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__
