"""The status plug-in: OPA status messages (Status API), after each change and every ``max_delay``.

``POST service.url/status`` (``/status/PARTITION`` with ``status.partition_name``, as OPA) with::

    {"labels": {"id": "<device id>", "version": "<pyagent>", ...[labels]},
     "bundles": {"pyagent": {"name": "pyagent", "active_revision": "...", "last_request": "...",
                             "last_successful_request": "...", "last_successful_download": "...",
                             "last_successful_activation": "...", "type": "snapshot", "size": 123,
                             "code": "bundle_error", "message": "...",
                             "errors": [{"code": "bundle_error", "message": "..."}], "http_code": 503}},
     "plugins": {"bundle": {"state": "OK"}, "decision_logs": {"state": "OK"}, "status": {"state": "OK"}},
     "decision_logs": {"code": "decision_log_error", "message": "...", "http_code": 503, "set_aside": 2}}

``code``, ``message`` and ``errors`` are there only while the bundle's last attempt failed, and
``http_code`` only when it failed with an HTTP status, as in OPA. ``decision_logs`` is OPA's too:
empty while uploads succeed, ``code``/``message`` (and ``http_code``) while the last one failed; pyagent
adds ``set_aside``, the events the service refused that wait aside, when there are any.
The outcome of the last message (its time, the last success, the error) is kept in the state directory
(``status-upload.json``) for ``agent status``, as the bundle's is in its ``status.json``.
Plug-in states are OPA's (checked against the pinned ``opa run``): the bundle plug-in is ``NOT_READY``
until a bundle is active and ``OK`` from then on; the decision-log and status plug-ins are ``OK`` once
started. A failed attempt changes no state (OPA's ``/health?plugins`` would call the agent unhealthy for
a network blip): it is told in the bundle's ``code``/``message`` and in ``decision_logs``, and pyagent
adds the failure's words as the plug-in's ``message``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pyagent import __version__
from pyagent.agent.http import BodyTooLarge, ServiceClient, TransportError, backoff
from pyagent.agent.plugins.bundle import BundlePlugin
from pyagent.agent.plugins.logs import DecisionLogPlugin
from pyagent.agent.store import utc_now
from pyagent.bundles.state import write_atomic
from pyagent.errors import InvalidInputError, PyagentError
from pyagent.jsonio import storable
from pyagent.termsafe import shorten

OK, NOT_READY = "OK", "NOT_READY"  # OPA's plug-in states (plugins.State) that its plug-ins report
DEFAULT_PERIOD = 120.0
STATE_FILE = "status-upload.json"
MAX_ERROR_TEXT = 2000  # what a service said, bounded before it is kept


def bundle_state(plugin: BundlePlugin) -> str:
    """As OPA's bundle plug-in: ready once a bundle is active, whatever its later attempts gave."""
    return OK if plugin.active else NOT_READY


def logs_status(plugin: DecisionLogPlugin) -> dict[str, Any]:
    """The decision-log plug-in's part of a status message, as OPA's ``plugins/logs`` Status gives it."""
    state = plugin.state
    shown: dict[str, Any] = {}
    if state.last_error:
        shown.update(code="decision_log_error", message=state.last_error)
        if state.http_code is not None:
            shown["http_code"] = state.http_code
    if state.set_aside:
        shown["set_aside"] = state.set_aside
    return shown


@dataclass
class StatusState:
    last_attempt_at: str | None = None
    last_ok_at: str | None = None
    last_error: str | None = None
    service: str | None = None
    """Where the messages go (``services.NAME.url`` and the resource)."""


#: The first retry of a status message not taken, in seconds.
RETRY_SECONDS = 5.0


class StatusPlugin:
    """Sends status messages to ``[status]``'s service."""

    def __init__(
        self,
        client: ServiceClient,
        labels: Mapping[str, str],
        device_id: Callable[[], str],
        *,
        bundles: list[BundlePlugin],
        logs: DecisionLogPlugin | None,
        period: float = DEFAULT_PERIOD,
        resource: str = "/status",
        notify: Callable[[str, str, dict[str, Any]], None] | None = None,
        state_dir: Callable[[], Path] | None = None,
    ) -> None:
        """``state_dir``: where the last message's outcome is kept (``STATE_FILE``), asked when it is
        kept (a state directory that cannot be used is told then, and stops no message); None keeps
        none."""
        self.notify = notify or (lambda event, text, fields: None)
        self.client = client
        self.resource = resource
        self.labels = dict(labels)
        self.device_id = device_id
        self.bundles = bundles
        self.logs = logs
        self.period = period
        self.state = StatusState(service=client.url(resource))
        self.state_dir = state_dir
        self._sent_version: int | None = None
        self._failures = 0
        self._rng = random.Random()

    def version(self) -> int:
        return sum(plugin.version for plugin in self.bundles) + (self.logs.state.changes if self.logs else 0)

    def changed(self) -> bool:
        """True when something a status message reports changed since the last one was sent."""
        return self._sent_version != self.version()

    def message(self) -> dict[str, Any]:
        plugins: dict[str, Any] = {"status": {"state": OK}}
        if self.bundles:
            states = [bundle_state(plugin) for plugin in self.bundles]
            plugins["bundle"] = {"state": NOT_READY if NOT_READY in states else OK}
            failing = [f"{p.name}: {p.status.message}" for p in self.bundles if p.status.code]
            if failing:
                plugins["bundle"]["message"] = "; ".join(failing)
        message: dict[str, Any] = {
            "labels": {**self.labels, "id": self.device_id(), "version": __version__},
            "bundles": {plugin.name: plugin.status.opa_json() for plugin in self.bundles},
            "plugins": plugins,
        }
        if self.logs is not None:
            plugins["decision_logs"] = {"state": OK}
            if self.logs.state.last_error:
                plugins["decision_logs"]["message"] = self.logs.state.last_error
            message["decision_logs"] = logs_status(self.logs)
        return message

    def step(self) -> float:
        """Send one status message; returns the seconds until the next periodic one."""
        version = self.version()
        self.state.last_attempt_at = utc_now()
        body = json.dumps(storable(self.message()), separators=(",", ":"), ensure_ascii=False).encode()
        try:
            reply = self.client.request(
                "POST",
                self.resource,
                timeout=self.client.service.timeout,
                max_body=64 * 1024,
                headers={"Content-Type": "application/json"},
                body=body,
            )
        except BodyTooLarge:  # (bounded so only in a 2xx: the message was taken, its answer is not read)
            pass
        except (TransportError, PyagentError) as err:
            return self._failed(str(err))
        else:
            if not 200 <= reply.status < 300:
                return self._failed(f"{self.client.url(self.resource)}: {reply.message()}")
        self.state.last_error = None
        self.state.last_ok_at = self.state.last_attempt_at
        self._sent_version = version
        self._failures = 0
        self._save()
        return self.period

    def _failed(self, error: str) -> float:
        """A status message not taken (a token rotated away: 401): said, as OPA logs it, and tried again
        after 5 s, then twice as long after each failure in a row, up to the period, each scaled by a
        random factor in [0.5, 1] (a fleet's agents retrying every 5 s, in step, would add to the load of
        a server that refuses them)."""
        self.state.last_error = shorten(error, MAX_ERROR_TEXT)
        self.notify("status_failed", f"status: {error}", {"error": error})
        self._save()
        self._failures += 1
        return backoff(self._failures, base=RETRY_SECONDS, cap=self.period, rng=self._rng)

    def _save(self) -> None:
        """The outcome kept for ``agent status``; a state directory that cannot take it is told, and the
        messages go on."""
        if self.state_dir is None:
            return
        try:
            where = self.state_dir() / STATE_FILE  # (one that cannot be used: InvalidInputError, naming it)
        except InvalidInputError as err:
            self._unsaved(f"status: cannot keep the last outcome: {err}")
            return
        try:
            write_atomic(where, json.dumps(asdict(self.state), indent=2).encode() + b"\n")
        except (OSError, InvalidInputError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            self._unsaved(f"status: cannot keep the last outcome in {where}: {reason}")

    def _unsaved(self, text: str) -> None:
        self.notify("status_state_failed", text, {"error": text})
