"""The agent's configuration: one module for the config file, its OPA tables, secrets and state.

* :mod:`pyagent.config.files` — reading TOML or YAML files and secret files, bounded;
* :mod:`pyagent.config.check` — checked values, errors naming the key and the file;
* :mod:`pyagent.config.agent` — ``[device]``, ``[agent]``, ``[opa]``: :func:`load_config`;
* :mod:`pyagent.config.opa` — OPA's tables: ``services``, ``bundles``, ``keys``, ``decision_logs``,
  ``status``, ``labels``;
* :mod:`pyagent.config.opakeys` — the rest of OPA's config: which keys the agent ignores (and says so),
  which it refuses and why;
* :mod:`pyagent.config.statedir` — the state directory, and the checks that keep it private.

Import from the modules (``from pyagent.config.agent import load_config``): the package imports
nothing itself, so that a ``check`` needing only the state directory does not load the config code.
"""
