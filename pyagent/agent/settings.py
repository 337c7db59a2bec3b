"""The agent's settings: the ``[agent]`` and ``[opa]`` sections of the config file, flags winning.

``[agent]`` keys (all optional)::

    interval = 3600                 # seconds between runs (0: back to back)
    jitter = 0.1                    # each sleep is interval * (1 +- jitter), at random; 0 <= jitter < 1
    spool_path = "/var/lib/pyagent/spool.sqlite"   # the results and the decision log (SQLite, WAL)
    log_path = "/var/log/pyagent/agent.jsonl"      # activity log, one JSON object a line (default: none)
    max_records = 10000             # the spool keeps at most this many results; the oldest go first
    collector_url = "https://collector.internal/v1/results"   # ship results here (default: don't)
    collector_token_file = "/etc/pyagent/collector.token"     # bearer token for the collector
    collector_ca = "/etc/pyagent/collector-ca.pem"            # CA for the collector's TLS certificate
    collector_timeout = 10          # seconds per request
    hmac_key_file = "/etc/pyagent/log.key"         # key the decision log's chain (HMAC-SHA256)

``[opa]`` keys read by the agent: ``url`` (use an OPA server; default: the embedded engine),
``token_file`` and ``ca``.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pyagent.agentconfig import AgentConfig
from pyagent.engines.base import EngineSettings
from pyagent.errors import InvalidInputError

DEFAULT_INTERVAL = 3600.0
DEFAULT_JITTER = 0.1
DEFAULT_MAX_RECORDS = 10_000
DEFAULT_COLLECTOR_TIMEOUT = 10.0
MAX_SECRET_BYTES = 64 * 1024


def default_spool_path() -> Path:
    """Where the spool lives by default: systemd's ``StateDirectory=pyagent`` on Linux."""
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "pyagent" / "spool.sqlite"
    if sys.platform == "darwin":
        return Path("/Library/Application Support/pyagent/spool.sqlite")
    return Path("/var/lib/pyagent/spool.sqlite")


@dataclass(frozen=True)
class AgentSettings:
    """How the agent runs, records and ships."""

    interval: float = DEFAULT_INTERVAL
    jitter: float = DEFAULT_JITTER
    spool_path: Path = field(default_factory=default_spool_path)
    log_path: Path | None = None
    max_records: int = DEFAULT_MAX_RECORDS
    collector_url: str | None = None
    collector_token_file: Path | None = None
    collector_ca: Path | None = None
    collector_timeout: float = DEFAULT_COLLECTOR_TIMEOUT
    hmac_key_file: Path | None = None


def _number(value: Any, key: str, where: str, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"agent.{key} in {where} must be a number, got {value!r}")
    if value < minimum:
        raise InvalidInputError(f"agent.{key} in {where} must be at least {minimum:g}, got {value!r}")
    return float(value)


def _path(value: Any, key: str, where: str) -> Path:
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise InvalidInputError(f"agent.{key} in {where} must be a non-empty path string")
    return Path(value)


def check_collector_url(url: str, *, what: str) -> str:
    """``url`` when it is an absolute http(s) URL without credentials, else a usage error."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"{what}: {url!r} is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise InvalidInputError(f"{what}: put the token in agent.collector_token_file, not in the URL")
    return url


def agent_settings(config: AgentConfig) -> AgentSettings:
    """The ``[agent]`` section, checked: a wrong type or range names the key and the file."""
    where = config.source or "the agent config"
    section = config.agent
    settings = AgentSettings()
    if "interval" in section:
        settings = replace(settings, interval=_number(section["interval"], "interval", where, minimum=0))
    if "jitter" in section:
        jitter = _number(section["jitter"], "jitter", where, minimum=0)
        if jitter >= 1:
            raise InvalidInputError(
                f"agent.jitter in {where} must be below 1 (0.1 is +-10 %), got {jitter:g}"
            )
        settings = replace(settings, jitter=jitter)
    if "max_records" in section:
        value = section["max_records"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(
                f"agent.max_records in {where} must be a whole number >= 1, got {value!r}"
            )
        settings = replace(settings, max_records=value)
    if "collector_timeout" in section:
        timeout = _number(section["collector_timeout"], "collector_timeout", where, minimum=0.01)
        settings = replace(settings, collector_timeout=timeout)
    if "collector_url" in section:
        url = section["collector_url"]
        if not isinstance(url, str):
            raise InvalidInputError(f"agent.collector_url in {where} must be a string")
        settings = replace(
            settings, collector_url=check_collector_url(url, what=f"agent.collector_url in {where}")
        )

    def path(key: str) -> Path | None:
        return _path(section[key], key, where) if key in section else None

    return replace(
        settings,
        spool_path=path("spool_path") or settings.spool_path,
        log_path=path("log_path"),
        collector_token_file=path("collector_token_file"),
        collector_ca=path("collector_ca"),
        hmac_key_file=path("hmac_key_file"),
    )


def read_secret(path: Path, *, what: str) -> str:
    """The first line of a token or key file, stripped; empty or unreadable is a usage error."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as err:
        raise InvalidInputError(f"{path}: cannot read {what}: {err.strerror}") from err
    if len(raw) > MAX_SECRET_BYTES:
        raise InvalidInputError(f"{path}: {what} is larger than 64 KiB")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError as err:
        raise InvalidInputError(f"{path}: {what} is not UTF-8 text") from err
    if not text or "\n" in text:
        raise InvalidInputError(f"{path}: {what} must be one non-empty line")
    return text


def engine_settings(config: AgentConfig, flags: EngineSettings) -> EngineSettings:
    """The engine settings: flags first, then ``[opa]`` (``url``, ``token_file``, ``ca``)."""
    where = config.source or "the agent config"
    section = config.opa

    def text(key: str) -> str | None:
        value = section.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InvalidInputError(f"opa.{key} in {where} must be a non-empty string")
        return value

    url = flags.opa_url or text("url")
    token = flags.opa_token
    token_file = text("token_file")
    if token is None and token_file is not None:
        token = read_secret(Path(token_file), what="OPA token (opa.token_file)")
    ca = flags.opa_ca or text("ca")
    return replace(flags, opa_url=url, opa_token=token, opa_ca=ca)
