"""The agent's configuration file: device facts the collectors cannot see, and how to reach OPA.

One documented location per OS, overridable with ``--config`` or ``PYAGENT_CONFIG``:

* Linux and other Unix: ``/etc/pyagent/agent.toml``
* macOS: ``/Library/Application Support/pyagent/agent.toml``
* Windows: ``%ProgramData%\\pyagent\\agent.toml``

Example::

    [device]
    id = "fr-brussels-0042"
    organization = "eu-commission"
    ownership = "corporate"      # corporate | personal
    mdm_enrolled = true
    mdm_provider = "intune"

    [opa]
    url = "https://opa.internal:8181"
    token_file = "/etc/pyagent/opa.token"
    ca = "/etc/pyagent/opa-ca.pem"

    [agent]                      # `pyagent agent run`; see pyagent/agent/settings.py
    interval = 3600              # seconds between runs
    jitter = 0.1                 # +-10 % of the interval, at random
    spool_path = "/var/lib/pyagent/spool.sqlite"
    log_path = "/var/log/pyagent/agent.jsonl"
    max_records = 10000
    collector_url = "https://collector.internal/v1/results"
    collector_token_file = "/etc/pyagent/collector.token"
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyagent.errors import InvalidInputError

MAX_CONFIG_BYTES = 1024 * 1024


def default_config_path() -> Path:
    """``PYAGENT_CONFIG`` when set, else this OS's documented location."""
    env = os.environ.get("PYAGENT_CONFIG")
    if env:
        return Path(env)
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "pyagent" / "agent.toml"
    if sys.platform == "darwin":
        return Path("/Library/Application Support/pyagent/agent.toml")
    return Path("/etc/pyagent/agent.toml")


@dataclass(frozen=True)
class AgentConfig:
    """The parsed configuration file (every section optional)."""

    source: str | None = None
    device: dict[str, Any] = field(default_factory=dict)
    opa: dict[str, Any] = field(default_factory=dict)
    agent: dict[str, Any] = field(default_factory=dict)


_SECTIONS = {"device", "opa", "agent"}
_DEVICE_KEYS = {"id", "organization", "ownership", "mdm_enrolled", "mdm_provider"}
_AGENT_KEYS = {
    "interval",
    "jitter",
    "spool_path",
    "log_path",
    "max_records",
    "collector_url",
    "collector_token_file",
    "collector_ca",
    "collector_timeout",
    "hmac_key_file",
}


def load_config(path: str | Path | None = None, *, required: bool = False) -> AgentConfig:
    """Read the config at ``path`` (default location when None). A missing default file is empty."""
    target = Path(path) if path is not None else default_config_path()
    if not target.exists():
        if required or path is not None:
            raise InvalidInputError(f"{target}: config file not found")
        return AgentConfig()
    if not target.is_file():
        raise InvalidInputError(f"{target}: config is not a regular file")
    raw = target.read_bytes()[: MAX_CONFIG_BYTES + 1]
    if len(raw) > MAX_CONFIG_BYTES:
        raise InvalidInputError(f"{target}: config is larger than 1 MiB")
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise InvalidInputError(f"{target}: config is not UTF-8 text") from err
    except tomllib.TOMLDecodeError as err:
        raise InvalidInputError(f"{target}: config is not valid TOML: {err}") from err
    unknown = sorted(set(document) - _SECTIONS)
    if unknown:
        raise InvalidInputError(f"{target}: unknown section [{unknown[0]}]; known: device, opa, agent")
    for name in _SECTIONS & set(document):
        if not isinstance(document[name], dict):
            raise InvalidInputError(f"{target}: {name} must be a table ([{name}])")
    device = document.get("device", {})
    bad = sorted(set(device) - _DEVICE_KEYS)
    if bad:
        raise InvalidInputError(
            f"{target}: unknown key device.{bad[0]}; known: {', '.join(sorted(_DEVICE_KEYS))}"
        )
    bad_agent = sorted(set(document.get("agent", {})) - _AGENT_KEYS)
    if bad_agent:
        raise InvalidInputError(
            f"{target}: unknown key agent.{bad_agent[0]}; known: {', '.join(sorted(_AGENT_KEYS))}"
        )
    return AgentConfig(
        source=str(target), device=device, opa=document.get("opa", {}), agent=document.get("agent", {})
    )
