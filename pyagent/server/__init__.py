"""``pyagent server``: the control plane on OPA's management APIs.

One ASGI app (:mod:`pyagent.server.app`) over one store interface (:mod:`pyagent.server.store`):
the Bundle API (:mod:`.bundles`), the Decision Log receiver (:mod:`.logs`), the Status receiver
(:mod:`.status`), the fleet JSON API (:mod:`.api`). The process keeps no state of its own, so any
number of replicas on one PostgreSQL serve one fleet.
"""
