"""The ``opa`` engine: OPA's REST Data API (``POST /v1/data/pyagent/decision``) over bounded HTTP.

A response without ``result``, a malformed response, a 4xx/5xx, a redirect (never followed), an
answer over the size limit or one not complete within the deadline is "no decision"
(:class:`EngineError`, exit code 3), never allow. One deadline covers the whole decision, retries
included: each attempt's connect, headers and body are cut when it passes, however slowly the server
dribbles. Credentials in the URL (``https://user:password@host``) are sent as basic auth, over TLS
only; they never appear in a message. ``unix:///path`` asks an OPA on this machine over its Unix
domain socket (``opa run --addr unix:///path``), and only one that runs as this user or root
(``bounded_http/unix.py``). Decisions reuse a connection kept open between them
(``bounded_http.Session``); :meth:`OpaServerEngine.close` closes it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import random
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from pyagent.bounded_http import Reply, Session, Target, TransportError, tls_context
from pyagent.bounded_http.unix import MAX_PATH_BYTES
from pyagent.bounded_http.unix import SUPPORTED as UNIX_SUPPORTED
from pyagent.engines.base import ENTRYPOINT, Engine, EngineError, EngineName, EngineSettings
from pyagent.engines.encode import encode_json
from pyagent.errors import InvalidInputError
from pyagent.jsonio import unique_keys
from pyagent.redact import origin, redact
from pyagent.termsafe import shorten

#: The largest decision answer read (bytes): a decision is a few KiB; a larger body is refused as it
#: arrives, so that memory stays bounded whatever the server sends.
MAX_ANSWER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class OpaServerSettings:
    """How to reach an OPA server."""

    url: str
    token: str | None = None
    ca_file: str | None = None
    timeout: float = 5.0
    """Seconds for one attempt."""
    deadline: float = 10.0
    """Seconds for the whole decision, retries included."""
    retries: int = 2
    """Retries after the first attempt, on connection errors, time-outs and 5xx only."""
    backoff_base: float = 0.1
    backoff_cap: float = 2.0
    max_answer: int = MAX_ANSWER_BYTES
    """Bytes: a longer answer is refused while it arrives."""


@dataclass(frozen=True)
class _Endpoint:
    host: str
    port: int
    tls: bool
    origin: str
    """``scheme://host:port``, for messages: never the user-info."""
    basic: str | None = None
    """``user:password`` from the URL, sent as basic auth (over TLS only)."""
    unix_path: str | None = None
    """The socket's path, for ``unix:///path``."""
    base_path: str = ""
    """The path OPA's API is under, behind a reverse proxy (``/opa``); empty: the root."""


def parse_url(url: str, what: str = "--opa-url") -> _Endpoint:
    """Split an OPA base URL (``http[s]://[user:password@]host[:port][/prefix]``, or ``unix:///path``
    for a Unix domain socket) into what the client needs. A prefix is the path a reverse proxy serves
    OPA's API under; OPA's own paths (``/v1/...``) are not one.

    Credentials in the URL are refused on plain http (they would travel in clear text); on https they
    are sent as basic auth. A message about the URL never shows them.
    """
    shown = repr(redact(url))
    try:
        parts = urlsplit(url)
    except ValueError as err:  # "http://[::1": an IPv6 host left open
        raise InvalidInputError(f"{what}: {shown} is not a URL ({err})") from None
    if parts.scheme == "unix":
        return _unix_endpoint(url, shown, what)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"{what}: {shown} is not an http(s)://host[:port] or unix:///path URL")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidInputError(f"{what}: {shown} holds a space or a control character")
    if parts.query or parts.fragment:
        raise InvalidInputError(f"{what}: {shown} must not have a query or fragment")
    base_path = _base_path(parts.path, shown, what)
    try:
        port = parts.port
    except ValueError as err:
        raise InvalidInputError(f"{what}: {shown} has an invalid port") from err
    if port == 0:
        raise InvalidInputError(f"{what}: {shown} has an invalid port")
    tls = parts.scheme == "https"
    basic = None
    if parts.username is not None or parts.password is not None:
        if not tls:
            raise InvalidInputError(
                f"{what}: {shown} has credentials, which are sent (as basic auth) over https only; "
                "use an https:// URL, or --opa-token"
            )
        basic = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    port = port if port is not None else 443 if tls else 8181
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # (IPv6)
    where = origin(f"{parts.scheme}://{host}:{port}")
    return _Endpoint(parts.hostname, port, tls, where, basic, base_path=base_path)


_SEGMENT = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})+")
#: What follows ``v1`` in OPA's own paths (its REST API): a prefix ending so is a path of that API.
_OPA_API = frozenset({"data", "policies", "query", "compile", "config", "status"})


def _base_path(path: str, shown: str, what: str) -> str:
    """The prefix of ``path`` without its trailing slash: segments of printable URL characters, none
    of them a dot segment (``.``, ``..``, ``..;`` as some servers read it: a proxy would resolve it
    elsewhere), escaped or not, nor a path of OPA's own API (``…/v1`` or ``…/v1/data…``)."""
    inner = path.removeprefix("/").removesuffix("/")
    segments = inner.split("/") if inner else []
    decoded = [unquote(s) for s in segments]
    if any(
        d == "v1" and (i + 1 == len(decoded) or decoded[i + 1] in _OPA_API) for i, d in enumerate(decoded)
    ):
        raise InvalidInputError(
            f"{what}: {shown}: give OPA's base URL (scheme://host[:port], or the prefix a proxy serves "
            "it under), not a path of its API"
        )
    pairs = zip(segments, decoded, strict=True)
    if any(
        not _SEGMENT.fullmatch(s) or not d.isprintable() or "/" in d or d.split(";")[0] in ("", ".", "..")
        for s, d in pairs
    ):
        raise InvalidInputError(f"{what}: {shown} has a path that is no plain /prefix")
    return "/" + "/".join(segments) if segments else ""


def check_url_given(settings: EngineSettings) -> str:
    """The OPA URL of ``settings``, there and well formed, or the usage error (exit 2) saying not."""
    if not settings.opa_url:
        raise InvalidInputError("--engine opa needs --opa-url URL (or env PYAGENT_OPA_URL)")
    parse_url(settings.opa_url)
    return settings.opa_url


def _unix_endpoint(url: str, shown: str, what: str) -> _Endpoint:
    """``unix:///absolute/path/to/opa.sock``: nothing but the socket's absolute path."""
    path = url.removeprefix("unix://")
    if not path.startswith("/") or any(c in "?#" or c.isspace() or not c.isprintable() for c in path):
        raise InvalidInputError(
            f"{what}: {shown} is not unix:///path (an absolute socket path, no host, query, fragment, "
            "space or control character)"
        )
    if not UNIX_SUPPORTED:
        raise InvalidInputError(
            f"{what}: {shown}: this system cannot tell who listens on a Unix socket (Linux can); "
            "use an http(s):// URL"
        )
    if len(os.fsencode(path)) > MAX_PATH_BYTES:
        raise InvalidInputError(f"{what}: {shown}: a socket path is at most {MAX_PATH_BYTES} bytes")
    return _Endpoint("localhost", 0, False, f"unix://{path}", None, path)


class _RetryableError(EngineError):
    """A failure worth another attempt: the server may be restarting or overloaded."""


class OpaServerEngine(Engine):
    """Asks an OPA server for ``data.pyagent.decision``."""

    name: ClassVar[EngineName] = EngineName.OPA

    def __init__(self, settings: OpaServerSettings) -> None:
        self._settings = settings
        self._rng = random.Random()
        self.retried = 0
        endpoint = parse_url(settings.url)
        if settings.ca_file and not endpoint.tls:
            raise InvalidInputError(f"--opa-ca is for an https:// URL, not {endpoint.origin}")
        if endpoint.basic is not None and settings.token:
            raise InvalidInputError("--opa-url has credentials and --opa-token is given: give one of them")
        context: ssl.SSLContext | None = None
        if endpoint.tls:
            # The configured CA, else the system's: never REQUESTS_CA_BUNDLE and friends.
            context = tls_context(settings.ca_file, what="--opa-ca")
        self._where = endpoint.origin + endpoint.base_path
        self._base_path = endpoint.base_path
        self._session = Session(
            Target(endpoint.host, endpoint.port, context, endpoint.origin, endpoint.unix_path)
        )
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if settings.token:
            token = settings.token.strip()
            if not token or not token.isprintable() or " " in token:
                raise InvalidInputError("--opa-token: a bearer token is printable characters, no space")
            self._headers["Authorization"] = f"Bearer {token}"
        elif endpoint.basic is not None:
            self._headers["Authorization"] = "Basic " + base64.b64encode(endpoint.basic.encode()).decode()

    def close(self) -> None:
        self._session.close()

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> OpaServerEngine:
        url = check_url_given(settings)
        if settings.data_files:
            raise InvalidInputError(
                "--data works with the embedded engine only; "
                "an OPA server decides with the data it was started with"
            )
        if settings.opa_ca and not Path(settings.opa_ca).is_file():
            raise InvalidInputError(f"--opa-ca: {settings.opa_ca}: no such file")
        return cls(
            OpaServerSettings(
                url=url,
                token=settings.opa_token,
                ca_file=settings.opa_ca,
                timeout=settings.opa_timeout,
                deadline=settings.opa_deadline,
                retries=settings.opa_retries,
            )
        )

    def evaluate(self, policy_input: Mapping[str, Any]) -> dict[str, Any]:
        """One decision within the total deadline: retries with exponential backoff and full jitter
        on connection errors and 5xx; every other failure at once. Never a default result."""
        settings = self._settings
        self.last_decision_id = self.last_bundles = None
        deadline = time.monotonic() + settings.deadline
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            timeout = max(0.001, min(settings.timeout, remaining))
            try:
                return self._attempt(policy_input, timeout)
            except _RetryableError as err:
                attempt += 1
                pause = self._rng.uniform(0, min(settings.backoff_cap, settings.backoff_base * 2**attempt))
                if attempt > settings.retries or time.monotonic() + pause >= deadline:
                    tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                    raise EngineError(
                        f"{err} (gave up after {tries}, deadline {settings.deadline:g} s)"
                    ) from err
                self.retried += 1
                time.sleep(pause)

    def _attempt(self, policy_input: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        where = self._where
        body = encode_json({"input": dict(policy_input)}, "the decision input")
        try:
            reply = self._session.request(
                "POST",
                f"{self._base_path}/v1/data/{ENTRYPOINT}?provenance=true",  # which bundle revisions decided
                timeout=timeout,
                max_body=self._settings.max_answer,
                headers=self._headers,
                body=body,
            )
        except TransportError as err:
            raise _transport_error(where, err, timeout) from err
        if reply.status != 200:  # (its message is kept in the spool and uploaded: the token never in it)
            secret = self._headers.get("Authorization", "").partition(" ")[2]
            raise _status_error(where, dataclasses.replace(reply, secrets=(secret,) if secret else ()))
        try:
            text = reply.body.decode("utf-8")  # what OPA writes; json.loads would guess UTF-16 from NULs
        except UnicodeDecodeError as err:
            raise EngineError(f"OPA at {where}: malformed response (not UTF-8 JSON)") from err
        try:  # strictly: a key said twice, or NaN, is no answer (Go's encoder writes neither)
            response = json.loads(text, object_pairs_hook=unique_keys, parse_constant=_not_json)
        except (ValueError, RecursionError) as err:
            raise EngineError(f"OPA at {where}: malformed response ({_first_line(err)})") from err
        if not isinstance(response, dict):
            raise EngineError(f"OPA at {where}: malformed response (not a JSON object)")
        if "result" not in response:
            raise EngineError(
                f"OPA at {where}: no result for data.{ENTRYPOINT.replace('/', '.')} "
                "(policy not loaded, or the bundle not yet active)"
            )
        result = response["result"]
        if not isinstance(result, dict):
            raise EngineError(f"OPA at {where}: malformed result (not a JSON object)")
        decision_id = response.get("decision_id")
        if isinstance(decision_id, str) and 0 < len(decision_id) <= 200:
            self.last_decision_id = decision_id  # OPA gives one when it logs decisions
        self.last_bundles = _bundles(response.get("provenance"))
        return result


def _bundles(provenance: Any) -> dict[str, dict[str, str]] | None:
    """The bundle revisions in OPA's provenance (``bundles: {name: {revision}}``), bounded; None when
    it gives none (OPA without bundles: policies loaded from files)."""
    bundles = provenance.get("bundles") if isinstance(provenance, dict) else None
    if not isinstance(bundles, dict) or not bundles:
        return None
    named = {
        name[:200]: {"revision": info["revision"][:200]}
        for name, info in list(bundles.items())[:16]
        if isinstance(name, str) and isinstance(info, dict) and isinstance(info.get("revision"), str)
    }
    return named or None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _transport_error(where: str, err: TransportError, timeout: float) -> EngineError:
    """No complete answer: connection failures, time-outs and cut bodies are worth another attempt;
    a TLS failure, an answer over the size limit or a socket served by another user is not."""
    if err.kind == "tls":
        return EngineError(f"OPA at {where}: TLS verification failed ({err.detail})")
    if err.kind in ("too_large", "untrusted"):
        return EngineError(f"OPA at {where}: {err.detail}")
    if err.kind == "timeout":
        return _RetryableError(f"OPA at {where}: no answer within {timeout:g} s")
    if err.kind == "cut":
        return _RetryableError(f"OPA at {where}: {err.detail}")  # "the answer was cut short"
    return _RetryableError(f"OPA at {where}: cannot connect ({err.detail})")


def _status_error(where: str, reply: Reply) -> EngineError:
    """A status other than 200: a 5xx is worth another attempt; a redirect is never followed."""
    if 300 <= reply.status < 400:
        location = shorten(redact(reply.headers.get("location", "?")))
        return EngineError(
            f"OPA at {where}: HTTP {reply.status} redirect to {location!r}, not followed "
            "(point --opa-url at the OPA server itself)"
        )
    message = f"OPA at {where}: HTTP {reply.status} {_server_message(reply)}".rstrip()
    if reply.status >= 500:
        return _RetryableError(message)
    return EngineError(message)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return shorten(text[0]) if text else type(err).__name__


def _server_message(reply: Reply) -> str:
    """The server's ``message``, credentials and the request's own secrets redacted."""
    try:
        document = json.loads(reply.body)
    except (ValueError, RecursionError):
        return ""
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return f"({shorten(reply.unsecret(document['message']))})"
    return ""
