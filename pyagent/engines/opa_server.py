"""The ``opa`` engine: OPA's REST Data API through opa-python-client.

A response without ``result``, a malformed response, a 4xx/5xx or a timeout is "no decision"
(:class:`EngineError`, exit code 3), never allow.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pyagent.engines.base import ENTRYPOINT, Engine, EngineError, EngineName, EngineSettings
from pyagent.errors import InvalidInputError


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


@dataclass(frozen=True)
class _Endpoint:
    host: str
    port: int
    tls: bool


def parse_url(url: str) -> _Endpoint:
    """Split an OPA base URL (``http[s]://host[:port]``) into what the client needs."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"--opa-url: {url!r} is not an http(s)://host[:port] URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidInputError(f"--opa-url: {url!r} must not have a path, query or fragment")
    try:
        port = parts.port
    except ValueError as err:
        raise InvalidInputError(f"--opa-url: {url!r} has an invalid port") from err
    tls = parts.scheme == "https"
    return _Endpoint(host=parts.hostname, port=port or (443 if tls else 8181), tls=tls)


class _RetryableError(EngineError):
    """A failure worth another attempt: the server may be restarting or overloaded."""


class OpaServerEngine(Engine):
    """Asks an OPA server for ``data.pyagent.decision``."""

    name: ClassVar[EngineName] = EngineName.OPA

    def __init__(self, settings: OpaServerSettings) -> None:
        # Imported here: requests/opa-python-client are only paid for on this path.
        from opa_client.opa import OpaClient

        self._settings = settings
        self._rng = random.Random()
        self.retried = 0
        endpoint = parse_url(settings.url)
        if settings.ca_file and not endpoint.tls:
            raise InvalidInputError(f"--opa-ca is for an https:// URL, not {settings.url}")
        # The client takes its URL scheme from `ssl` being true: a CA path (https) or True (https, the
        # system CAs) or False (http).
        verify: bool | str = (settings.ca_file or True) if endpoint.tls else False
        self._client = OpaClient(
            host=endpoint.host,
            port=endpoint.port,
            ssl=verify,
            token=settings.token,
            retries=0,
            timeout=settings.timeout,
        )
        if settings.ca_file:
            # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE from the environment override a session's
            # `verify`: the configured CA must win, so the environment is not consulted.
            self._client._session.trust_env = False

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> OpaServerEngine:
        if not settings.opa_url:
            raise InvalidInputError("--engine opa needs --opa-url URL (or env PYAGENT_OPA_URL)")
        if settings.data_files:
            raise InvalidInputError(
                "--data works with the embedded engine only; "
                "an OPA server decides with the data it was started with"
            )
        if settings.opa_ca and not Path(settings.opa_ca).is_file():
            raise InvalidInputError(f"--opa-ca: {settings.opa_ca}: no such file")
        return cls(
            OpaServerSettings(
                url=settings.opa_url,
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
        self.last_decision_id = None
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
        import requests

        package, rule = ENTRYPOINT.rsplit("/", 1)
        where = self._settings.url
        self._client.timeout = timeout
        try:
            response = self._client.query_rule(
                input_data=dict(policy_input), package_path=package, rule_name=rule
            )
        except requests.exceptions.Timeout as err:
            raise _RetryableError(f"OPA at {where}: no answer within {timeout:g} s") from err
        except requests.exceptions.SSLError as err:
            raise EngineError(f"OPA at {where}: TLS verification failed ({_first_line(err)})") from err
        except requests.exceptions.ConnectionError as err:
            raise _RetryableError(f"OPA at {where}: cannot connect ({_first_line(err)})") from err
        except requests.exceptions.HTTPError as err:
            status = err.response.status_code if err.response is not None else 0
            message = f"OPA at {where}: HTTP {status or '?'} {_server_message(err.response)}".rstrip()
            if status >= 500:
                raise _RetryableError(message) from err
            raise EngineError(message) from err
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as err:
            # A decision query reads only: after a broken body, asking again is safe.
            raise _RetryableError(f"OPA at {where}: response cut short ({_first_line(err)})") from err
        except (requests.exceptions.RequestException, json.JSONDecodeError, ValueError) as err:
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
        return result

    def close(self) -> None:
        self._client.close_connection()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def _server_message(response: Any) -> str:
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return f"({body['message'][:200]})"
    return ""
