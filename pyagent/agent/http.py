"""HTTP for the agent's plug-ins: one request to a configured service, bounded in size and in time.

No redirect is followed (a 3xx is an answer like any other, which the plug-ins treat as an error);
every request has a total deadline, connection and body included, and its answer's headers the
service's ``response_header_timeout_seconds``; a body is read up to a limit (or streamed to a file
under it) and a longer one is refused while it arrives. The bearer token is read
from its file on every request, so a rotated token is used at once.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import random
import ssl
from urllib.parse import urlsplit

from pyagent import __version__
from pyagent.bounded_http import BodyTooLarge, Reply, Sink, Target, TransportError, request, tls_context
from pyagent.config.files import read_secret
from pyagent.config.opa import Service

__all__ = ["BodyTooLarge", "Reply", "ServiceClient", "Sink", "TransportError", "backoff", "resource_url"]


def _resource_path(base_path: str, resource: str) -> str:
    """The request path of ``resource`` under a service's URL path: its slashes trimmed at both ends, as
    OPA's REST client does (``/custom/logs/`` is ``BASE/custom/logs``)."""
    resource = resource.strip("/")
    if not resource:  # the URL itself (agent.collector_url: POST exactly there)
        return base_path or "/"
    return f"{base_path}/{resource}"


def resource_url(service_url: str, resource: str) -> str:
    """Where a request for ``resource`` of the service at ``service_url`` goes (:meth:`ServiceClient.url`),
    without a client (no TLS context, no token): what ``agent status`` names."""
    parts = urlsplit(service_url)
    return f"{parts.scheme}://{parts.netloc}" + _resource_path(parts.path.rstrip("/"), resource)


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
        self._ca_seen = _identity(service.ca_cert)
        self._target = Target(self._host, self._port, self._context(), self.origin)

    def _context(self) -> ssl.SSLContext | None:
        if not self._tls:
            return None
        service = self.service
        return tls_context(
            service.ca_cert, what=f"services.{service.name}.tls.ca_cert", system_too=service.system_ca
        )

    def _current_target(self) -> Target:
        """Where requests go, with the CA certificates the ``tls.ca_cert`` file holds now: as OPA, which
        reads the file for every client it makes, a CA rotated in place is trusted (and one taken out
        of the file is not) without a restart; a file that cannot be read fails the request."""
        seen = _identity(self.service.ca_cert)
        if self._tls and self.service.ca_cert is not None and seen != self._ca_seen:
            self._target = Target(self._host, self._port, self._context(), self.origin)
            self._ca_seen = seen
        return self._target

    def check_token(self) -> None:
        """Read the token file once now (when the service has one): a missing, empty or unusable one
        is an :class:`InvalidInputError` naming it. It is read again for every request, as OPA does,
        so that a token rotated in place is used at once."""
        if self.service.token_path is not None:
            self._token()

    def _token(self) -> str:
        assert self.service.token_path is not None
        what = f"token of service {self.service.name}"
        return read_secret(self.service.token_path, what=what, header=not self.service.oci)

    def url(self, resource: str) -> str:
        return self.origin + self.path(resource)

    def path(self, resource: str) -> str:
        return _resource_path(self._base_path, resource)

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
        long_poll: int | None = None,
    ) -> Reply:
        """One request, finished within ``timeout`` seconds or :class:`TransportError`; its answer's
        headers, within the service's ``response_header_timeout_seconds`` of the request being sent
        (plus ``long_poll``, the seconds the service was asked to hold it), as OPA's client does.

        A 2xx body goes to ``sink`` when one is given; every other body (an error message) is read
        up to 16 KiB. A body over ``max_body`` raises :class:`BodyTooLarge`. With ``exact_path``,
        ``resource`` is the request's path (and query) as it is, without the service URL's path. An
        ``Authorization`` in ``headers`` is sent instead of the service's bearer token. The service's
        configured ``headers`` go with every request; ``headers`` of the same names replace them.
        """
        send = {"User-Agent": f"pyagent/{__version__}"}
        token = raw = ""
        for name, value in (*self.service.headers, *(headers or {}).items()):  # the later wins
            for given in [key for key in send if key.lower() == name.lower()]:
                del send[given]
            send[name] = value
        if self.service.token_path is not None and "Authorization" not in send:
            token = raw = self._token()
            if self.service.oci:  # as OPA: a registry's token goes base64-encoded (ghcr.io takes a PAT so)
                token = base64.b64encode(raw.encode("utf-8")).decode("ascii")
            send["Authorization"] = f"{self.service.scheme} {token}"
        presented = (headers or {}).get("Authorization", "").partition(" ")[2]  # a registry's own token
        path = resource if exact_path else self.path(resource)
        reply = request(
            self._current_target(),
            method,
            path,
            timeout=timeout,
            max_body=max_body,
            headers=send,
            body=body,
            sink=sink,
            head_timeout=self.service.timeout + (long_poll or 0),
        )
        # what the request presented never comes back in a kept message: the token, and header values
        # long enough to be keys (a gateway's X-Api-Key); "eu-west" and the like are not worth hiding
        secrets = (token, raw, presented, *(value for _, value in self.service.headers if len(value) >= 16))
        return dataclasses.replace(reply, secrets=tuple(v for v in secrets if v))


def _identity(path: str | os.PathLike[str] | None) -> tuple[int, ...] | None:
    """A file's identity and version (device, inode, size, modification and change times: a rewrite in
    place that keeps the size and the modification time, ``cp -p``, still changes the latter), None when
    it has none."""
    if path is None:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def backoff(failures: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after ``failures`` failures in a row: exponential from ``base``, capped at
    ``cap``, scaled by a random factor in [0.5, 1] so that a fleet does not retry in step."""
    exponent = min(max(failures - 1, 0), 30)
    return min(cap, base * float(1 << exponent)) * rng.uniform(0.5, 1.0)
