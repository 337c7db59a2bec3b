"""The agent's configuration: one module for the config file, its OPA tables, secrets and state.

* :mod:`pyagent.config.files` — reading TOML or YAML files and secret files, bounded;
* :mod:`pyagent.config.check` — checked values, errors naming the key and the file;
* :mod:`pyagent.config.agent` — ``[device]``, ``[agent]``, ``[opa]``: :func:`load_config`;
* :mod:`pyagent.config.opa` — OPA's tables: ``services``, ``bundles``, ``keys``, ``decision_logs``,
  ``status``, ``labels``;
* :mod:`pyagent.config.statedir` — the state directory, and the checks that keep it private.
"""

from __future__ import annotations

from pyagent.config.agent import AgentConfig, AgentSettings, agent_settings, engine_settings, load_config
from pyagent.config.files import default_config_path, read_secret

__all__ = [
    "AgentConfig",
    "AgentSettings",
    "agent_settings",
    "default_config_path",
    "engine_settings",
    "load_config",
    "read_secret",
]
