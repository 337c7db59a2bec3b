"""One agent run: collect this machine, validate, decide; whatever happens becomes one result.

A run that fails (missing device facts, a collector tool failing, the engine unreachable) is a result
too, with its ``outcome`` and ``error``: the log shows every run, not only the good ones.

Outcomes and their exit codes (those of ``pyagent check``): ``compliant`` 0, ``non-compliant`` 1,
``invalid`` 2 (bad input or configuration), ``no-decision`` 3.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyagent import __version__
from pyagent.agent.chain import canonical_json, sha256_hex
from pyagent.agent.store import utc_now
from pyagent.config.agent import AgentConfig, agent_settings
from pyagent.decide import decide, raise_for_policy_errors
from pyagent.engines.base import Engine, EngineSettings
from pyagent.engines.select import build_engine, resolve
from pyagent.errors import InvalidInputError, PyagentError, unexpected_traceback
from pyagent.facts import FactFlags, build_report, resolve_facts
from pyagent.report.load import check_report

COMPLIANT, NON_COMPLIANT, INVALID, NO_DECISION = "compliant", "non-compliant", "invalid", "no-decision"


BundleInfo = dict[str, dict[str, str]]
Loader = Callable[[], tuple[Engine, BundleInfo]]


class EngineHolder:
    """Builds the engine on first use and keeps it; a failed build is retried on the next run.

    ``loader`` builds it (default: from the settings, as ``check`` does) and names the bundles it
    evaluates (``{name: {"revision": ...}}``, for decision-log events). The bundle plug-in ``install``s
    a new engine from another thread: ``lock`` is held while an engine is used.
    """

    def __init__(self, settings: EngineSettings, *, loader: Loader | None = None) -> None:
        self.settings = settings
        self._from_bundle = loader is not None
        self._loader = loader or (lambda: (build_engine(settings), {}))
        self._engine: Engine | None = None
        self._bundles: BundleInfo = {}
        self.lock = threading.RLock()

    @property
    def name(self) -> str:
        return resolve(self.settings).value

    def get(self) -> Engine:
        with self.lock:
            if self._engine is None:
                self._engine, self._bundles = self._loader()
            return self._engine

    def preload(self) -> bool:
        """Build the engine now when it comes from the bundle plug-in's active bundle; whether it is
        built. A saved bundle that no longer loads is then forgotten (the plug-in records and tells
        why) before the first download, which would otherwise ask for it by its ETag (a 304) or find
        its OCI layer unchanged, and keep it: that download fetches it afresh, for the run that needs
        it. Any other failure (a ``--data`` file that does not merge, say) is left to the run, which
        records it as its result, as without a preload."""
        if not self._from_bundle:
            return False
        try:
            self.get()
        except (PyagentError, OSError):
            return False
        return True

    def bundles(self) -> BundleInfo:
        with self.lock:
            return dict(self._bundles)

    def install(self, engine: Engine, bundles: BundleInfo) -> None:
        """Use ``engine`` from now on (the old one is closed)."""
        with self.lock:
            old, self._engine, self._bundles = self._engine, engine, bundles
        if old is not None:
            old.close()

    def close(self) -> None:
        with self.lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None

    def __enter__(self) -> EngineHolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class RunResult:
    """One run's result, ready to be recorded (``content``) and told (``summary``)."""

    outcome: str
    exit_code: int
    content: dict[str, Any]
    summary: str
    #: An unforeseen error's traceback (a bug), for the activity log; None otherwise.
    traceback: str | None = None


def _describe(error: BaseException) -> tuple[str, int, str]:
    if isinstance(error, InvalidInputError):
        return INVALID, 2, str(error)
    if isinstance(error, PyagentError):
        return NO_DECISION, error.exit_code, str(error)
    if isinstance(error, OSError):  # foreseen: the machine's (a full disk, a tool it cannot run)
        return NO_DECISION, 3, f"{type(error).__name__}: {error}".replace("\n", " ")
    return NO_DECISION, 3, f"internal error: {type(error).__name__}: {error}".replace("\n", " ")


def run_once(config: AgentConfig, engines: EngineHolder, flags: FactFlags | None = None) -> RunResult:
    """Collect, validate and decide once. Never raises for a failed run: the failure is the result.

    The record keeps the policy input (``{"at", "report"}``, exactly what the engine got), the bundles
    the engine evaluated and how long the decision took: the decision-log event is made of them.
    """
    started_at = utc_now()
    report: dict[str, Any] | None = None
    policy_input: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    bundles: BundleInfo = {}
    elapsed_ns: int | None = None
    error: BaseException | None = None
    try:
        facts = resolve_facts(flags or FactFlags(), config)
        inventory = agent_settings(config).collector().collect()
        report = build_report(inventory, facts)
        check_report(report, "report collected from this machine")
        # Milliseconds: two runs within one second are two instants, so the latest is the current state.
        at = utc_now()
        policy_input = {"at": at, "report": report}
        with engines.lock:
            engine = engines.get()
            bundles = engines.bundles()
            began = time.perf_counter_ns()
            decision = decide(engine, report, at=at)
            elapsed_ns = time.perf_counter_ns() - began
            bundles = bundles or engine.last_bundles or {}  # no [bundles]: the engine's own
        raise_for_policy_errors(decision, source="this machine")
    except Exception as err:  # every failure is recorded as this run's result, and told by the caller
        error = err
    if error is not None:
        outcome, exit_code, message = _describe(error)
    elif decision is not None and decision["allow"]:
        outcome, exit_code, message = COMPLIANT, 0, ""
    else:
        outcome, exit_code, message = NON_COMPLIANT, 1, ""
    device = report.get("device", {}) if report else {}
    content: dict[str, Any] = {
        "outcome": outcome,
        "exit_code": exit_code,
        "error": message or None,
        "device_id": device.get("id") or config.device.get("id"),
        "organization": (decision or {}).get("organization") or device.get("organization"),
        "allow": decision["allow"] if decision is not None else None,
        "report_sha256": sha256_hex(canonical_json(report)) if report is not None else None,
        "apps": len(report["apps"]) if report is not None else None,
        "collected_at": report["collected_at"] if report is not None else None,
        "evaluated_at": decision["evaluated_at"] if decision is not None else None,
        "policy_revision": decision["policy_revision"] if decision is not None else None,
        "engine": decision["engine"] if decision is not None else engines.name,
        "decision": decision,
        "input": policy_input,
        "bundles": bundles,
        "metrics": {"timer_pyagent_decide_ns": elapsed_ns} if elapsed_ns is not None else {},
        "started_at": started_at,
        "finished_at": utc_now(),
        "agent_version": __version__,
    }
    stack = unexpected_traceback(error) if error is not None else None
    return RunResult(outcome, exit_code, content, _summary(outcome, decision, message), stack)


def _summary(outcome: str, decision: dict[str, Any] | None, message: str) -> str:
    if message:
        return f"{outcome}: {message}"
    if decision is None:
        return outcome
    rules = sorted({str(v.get("rule")) for v in decision["violations"]})
    shown = f" ({', '.join(rules)})" if rules else ""
    return f"{outcome}{shown} for {decision.get('organization')}, policy {decision['policy_revision']}"


def decision_summary(body: dict[str, Any]) -> dict[str, Any]:
    """The last run, as ``agent status`` shows it, from a record's body."""
    decision = body.get("decision") if isinstance(body.get("decision"), dict) else None
    violations = decision.get("violations", []) if decision else []
    warnings = decision.get("warnings", []) if decision else []
    return {
        "at": body.get("recorded_at"),
        "outcome": body.get("outcome"),
        "exit_code": body.get("exit_code"),
        "allow": body.get("allow"),
        "device_id": body.get("device_id"),
        "organization": body.get("organization"),
        "violations": sorted({str(v.get("rule")) for v in violations if isinstance(v, dict)}),
        "warnings": len(warnings) if isinstance(warnings, list) else 0,
        "policy_revision": body.get("policy_revision"),
        "engine": body.get("engine"),
        "error": body.get("error"),
    }
