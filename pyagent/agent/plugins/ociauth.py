"""What an OCI pull asks beyond the service itself: the registry's token exchange, and requests to
other origins, which never carry the service's credentials.

A registry that answers 401 with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` issues
its own token from the realm (the registry token protocol, as OPA's resolver follows it):

- with the service's credentials (a bearer token file, configured headers), only from a realm on the
  service's origin: the credentials never leave it;
- with none configured, from wherever the realm is, asked anonymously, as registries with a token
  service of their own ask (Docker Hub's ``auth.docker.io``); over https when the registry is.

The token issued is then sent to the registry, the service's origin, only. A URL a registry gives
(a redirect's ``Location``, a realm) is untrusted: one that does not parse is a :class:`RegistryError`
naming it, never an exception of the URL parser.
"""

from __future__ import annotations

import json
import re
from urllib.parse import SplitResult, urlencode, urljoin, urlsplit

from pyagent import __version__
from pyagent.agent.http import BodyTooLarge, Reply, ServiceClient, Sink, TransportError
from pyagent.bounded_http import Target, request, tls_context
from pyagent.config.opa import Service
from pyagent.errors import NoDecisionError
from pyagent.termsafe import shorten

MAX_TOKEN_BYTES = 64 * 1024
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')

__all__ = [
    "MAX_TOKEN_BYTES",
    "RegistryError",
    "check_offsite",
    "fetch_token",
    "get_anonymously",
    "origin",
    "registry_message",
    "resolve",
]


class RegistryError(NoDecisionError):
    """The registry gave no usable answer (an HTTP error, a redirect elsewhere, a malformed manifest)."""


def origin(parts: SplitResult) -> str:
    return f"{parts.scheme}://{parts.netloc}"


def resolve(base: str, location: str, *, what: str) -> SplitResult:
    """``location`` (absolute, or relative to ``base``) as URL parts, its port checked; a
    :class:`RegistryError` saying ``what`` gave it when it does not parse (``http://[x/``)."""
    try:
        parts = urlsplit(urljoin(base, location))
        parts.port  # noqa: B018 (raises ValueError for a port out of range or not a number)
    except ValueError as err:
        raise RegistryError(f"{what} {shorten(repr(location), 200)}, which is not a URL ({err})") from None
    return parts


def has_credentials(service: Service) -> bool:
    """Whether requests to ``service`` carry anything configured (a token, a header such as an API key)."""
    return service.token_path is not None or bool(service.headers)


def check_offsite(url: SplitResult, *, tls: bool, what: str) -> None:
    """A :class:`RegistryError` unless ``url`` is one to ask without credentials: http(s) with a host,
    and https when the registry is (``tls``). ``what``: what is sent there, to say why not."""
    secure = url.scheme == "https"
    if url.scheme not in ("http", "https") or not url.hostname or (tls and not secure):
        named = f"{origin(url)}{url.path}"  # (never its query: a storage's URL is signed there)
        raise RegistryError(f"{what} {named}, not an {'https' if tls else 'http(s)'} URL; it is not followed")


def get_anonymously(
    service: Service,
    url: SplitResult,
    *,
    timeout: float,
    max_body: int,
    sink: Sink | None = None,
    accept: str | None = None,
) -> Reply:
    """``GET url`` (on another origin than ``service``'s, checked by :func:`check_offsite`), with no
    credentials, trusting the system's CAs and the service's own ``tls.ca_cert`` (a private registry's
    storage or token service may share it). Errors name the URL without its query."""
    secure = url.scheme == "https"
    port = url.port or (443 if secure else 80)
    assert url.hostname
    context = tls_context(service.ca_cert, what=f"services.{service.name}.tls.ca_cert", system_too=True)
    target = Target(url.hostname, port, context if secure else None, origin(url))
    headers = {"User-Agent": f"pyagent/{__version__}"} | ({"Accept": accept} if accept else {})
    where = (url.path or "/") + (f"?{url.query}" if url.query else "")
    try:
        return request(
            target,
            "GET",
            where,
            timeout=timeout,
            max_body=max_body,
            headers=headers,
            sink=sink,
            head_timeout=service.timeout,
        )
    except TransportError as err:  # named without the query
        raise type(err)(f"GET {origin(url)}{url.path}", err.detail, err.kind) from None


def fetch_token(client: ServiceClient, challenge: str, *, timeout: float, label: str) -> str:
    """The token the registry's ``Bearer`` ``challenge`` asks for, from its realm (see the module)."""
    params = dict(_CHALLENGE_PARAM.findall(challenge))
    realm = resolve("", params.get("realm", ""), what=f"{label}: the registry names as its token service")
    query = "&".join(
        part
        for part in (
            realm.query,
            urlencode({key: params[key] for key in ("service", "scope") if key in params}),
        )
        if part
    )
    where = f"GET {origin(realm)}{realm.path} (token)"
    try:
        if realm.scheme and origin(realm) == client.origin:  # with the service's credentials
            path = realm.path + (f"?{query}" if query else "")
            reply = client.request(
                "GET",
                path,
                timeout=timeout,
                max_body=MAX_TOKEN_BYTES,
                headers={"Accept": "application/json"},
                exact_path=True,
            )
        elif not has_credentials(client.service):  # nothing to keep from it: asked as it is
            what = f"{label}: the registry asks for its token from"
            check_offsite(realm, tls=client.origin.startswith("https://"), what=what)
            reply = get_anonymously(
                client.service,
                realm._replace(query=query),
                timeout=timeout,
                max_body=MAX_TOKEN_BYTES,
                accept="application/json",
            )
        else:
            raise RegistryError(
                f"{label}: the registry asks for a token from {params.get('realm')!r}, not on the "
                f"service's origin ({client.origin}); the service's credentials are not sent there"
            )
    except BodyTooLarge as err:  # (not a blob over its size: that is the bundle's refusal)
        raise RegistryError(f"{where}: {err.detail}") from err
    if reply.status != 200:
        raise RegistryError(f"{where}: {registry_message(reply)}")
    try:
        document = json.loads(reply.body)
    except (ValueError, RecursionError):
        document = None
    token = document.get("token") or document.get("access_token") if isinstance(document, dict) else None
    if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
        raise RegistryError(f"{where}: the answer holds no token")
    return token


def registry_message(reply: Reply) -> str:
    """``HTTP 404: MANIFEST_UNKNOWN: manifest unknown``, from the registry's ``errors`` when it gave them."""
    try:
        document = json.loads(reply.body) if reply.body else None
    except (ValueError, RecursionError):
        document = None
    errors = document.get("errors") if isinstance(document, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code, message = errors[0].get("code"), errors[0].get("message")
        detail = ": ".join(str(part) for part in (code, message) if part)
        if detail:  # (what the registry says may quote the credentials it was sent: never kept)
            return f"HTTP {reply.status}: {shorten(reply.unsecret(detail), 300)}"
    return reply.message()
