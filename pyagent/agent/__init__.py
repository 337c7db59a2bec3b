"""The agent mode: collect this machine, decide, record every result durably in a hash-chained
spool, and ship it to a collector at least once.

* :mod:`pyagent.agent.settings` — the ``[agent]`` config section;
* :mod:`pyagent.agent.cycle` — one run (collect, validate, decide) as a result;
* :mod:`pyagent.agent.store` — the SQLite spool and decision log (WAL, ``synchronous=FULL``);
* :mod:`pyagent.agent.chain` — canonical JSON, SHA-256 / HMAC-SHA256 digests;
* :mod:`pyagent.agent.verify` — ``pyagent log verify``;
* :mod:`pyagent.agent.ship` — HTTP POST to the collector with an ``Idempotency-Key``;
* :mod:`pyagent.agent.runner` — the loop, jitter, and SIGTERM.
"""
