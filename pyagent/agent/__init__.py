"""The agent mode: collect this machine, decide, record every result durably in a hash-chained
spool; with OPA's plug-ins, pull signed policy and report decisions and status back.

* :mod:`pyagent.config` — the config file (``[agent]``, ``[device]``, ``[opa]`` and OPA's tables);
* :mod:`pyagent.agent.cycle` — one run (collect, validate, decide) as a result;
* :mod:`pyagent.agent.store` — the SQLite spool and decision log (WAL, ``synchronous=FULL``);
* :mod:`pyagent.agent.chain` — canonical JSON, SHA-256 / HMAC-SHA256 digests;
* :mod:`pyagent.agent.verify` — ``pyagent log verify``;
* :mod:`pyagent.agent.plugins` — OPA's Bundle, Decision Log and Status APIs, over :mod:`pyagent.agent.http`;
* :mod:`pyagent.agent.wiring` — config to plug-ins and engine; :mod:`pyagent.agent.threads` — their threads;
* :mod:`pyagent.agent.runner` — the loop, jitter, and SIGTERM.
"""
