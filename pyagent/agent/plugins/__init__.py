"""The agent's plug-ins, after OPA's: each speaks one of OPA's management APIs to a configured service.

* :mod:`~pyagent.agent.plugins.bundle` — Bundle API: download, verify, activate policy;
* :mod:`~pyagent.agent.plugins.logs` — Decision Log API: upload the spool's records as events;
* :mod:`~pyagent.agent.plugins.status` — Status API: what is active, and what went wrong.

Each has a ``step()`` that makes one attempt and returns the seconds until the next one:
``agent run --once`` calls each once, ``agent run`` loops each in a thread of its own.
"""
