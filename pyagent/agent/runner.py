"""``pyagent agent run``: decide, record; then sleep ``interval +- jitter`` until SIGTERM; the plug-ins
(policy bundles in, decision logs and status out) beside it.

The order in every run is fixed: the result is committed to the spool (WAL, ``synchronous=FULL``)
and only then reported on stdout (one JSON line with its ``seq`` and ``id``) and uploaded. A SIGKILL
at any moment loses at most the run in flight, which was never reported as recorded.

``--once``: one bundle download attempt (no long poll), one decision, one upload, one status message,
in that order. Otherwise one bundle attempt first, then the decisions in this thread and each plug-in
in a thread of its own (:mod:`pyagent.agent.threads`).

SIGTERM, SIGINT and SIGHUP set a flag: a sleep ends at once, a run in progress is finished and recorded,
the decision logs' thread uploads what is pending once more, then the agent exits 0.
"""

from __future__ import annotations

import json
import random
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from pyagent.agent.chain import ChainKey
from pyagent.agent.cycle import EngineHolder, run_once
from pyagent.agent.store import RawRecord, Spool, SpoolCorruptError, SpoolError, move_aside, utc_now
from pyagent.agent.threads import ONCE_WAIT_SECONDS, UNFORESEEN, PluginThreads, first_download, guarded
from pyagent.agent.wiring import Plugins
from pyagent.config.agent import AgentConfig
from pyagent.errors import InvalidInputError
from pyagent.facts import FactFlags
from pyagent.jsonio import storable
from pyagent.redact import redact
from pyagent.termsafe import printable

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def next_delay(interval: float, jitter: float, rng: random.Random | None = None) -> float:
    """``interval`` scaled by a uniform factor in ``[1 - jitter, 1 + jitter]``."""
    if interval <= 0:
        return 0.0
    factor = 1.0 + (rng or random).uniform(-jitter, jitter)
    return max(0.0, interval * factor)


class StopFlag:
    """SIGTERM, SIGINT and SIGHUP set the flag (installed for the ``with`` block, then the old handlers
    are back)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # (HUP: a closed terminal, a reload: a stop too)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None
        self._previous: dict[int, _Handler] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name
        # Not ``self.event.set()`` here: the handler runs in the main thread, possibly while that
        # thread holds the Event's own lock inside ``Event.wait``; setting it from the handler would
        # wait for that lock forever. A short-lived thread sets it as soon as the lock is free.
        threading.Thread(target=self.event.set, name="pyagent-stop", daemon=True).start()

    def __enter__(self) -> StopFlag:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when told to stop."""
        return self.event.wait(seconds) if seconds > 0 else self.event.is_set()


class ActivityLog:
    """Human lines on stderr, and (``agent.log_path``) one JSON object a line in a file. An event's
    ``traceback`` (an unforeseen error's) is a field of its object in the file, else lines on stderr."""

    def __init__(self, path: Path | None, echo: Callable[[str], None]) -> None:
        self._echo = echo
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = path.open("a", encoding="utf-8")
            except OSError as err:
                raise InvalidInputError(
                    f"{path}: cannot open the agent log (agent.log_path): {err.strerror}"
                ) from err

    def event(self, name: str, text: str, **fields: Any) -> None:
        with self._lock:  # the plug-ins' threads tell too
            # one line an event: a line break in what a server sent (a bundle's revision) is escaped,
            # never a line of its own that reads as the agent's
            self._echo(f"pyagent: agent: {printable(text)}")
            stack = fields.get("traceback")
            if isinstance(stack, str) and self._file is None:  # (else the file keeps it, as a field)
                for line in stack.splitlines():
                    self._echo(f"pyagent: agent:   {printable(line)}")
            if self._file is not None:
                line = json.dumps({"at": utc_now(), "event": name, **fields}, ensure_ascii=False, default=str)
                self._file.write(storable(redact(line)) + "\n")  # no secret in the log file either
                self._file.flush()

    def notify(self, name: str, text: str, fields: dict[str, object]) -> None:
        """``event`` in the plug-ins' calling convention."""
        self.event(name, text, **fields)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


@dataclass(frozen=True)
class RunPlan:
    """Everything ``run_agent`` needs, resolved from config and flags."""

    spool_path: Path
    key: ChainKey
    max_records: int
    interval: float
    jitter: float
    once: bool
    move_corrupt_aside: bool


def open_spool(plan: RunPlan, log: ActivityLog) -> Spool:
    """Open the spool for writing; a corrupt one is moved aside only when the plan says so."""
    try:
        spool = Spool.open(plan.spool_path, key=plan.key)
    except SpoolCorruptError as err:
        if not plan.move_corrupt_aside:
            raise
        moved = move_aside(plan.spool_path)
        log.event(
            "spool_moved_aside",
            f"{plan.spool_path}: corrupt ({err.reason}); moved to {moved}, a new chain starts",
            moved_to=str(moved),
            error=str(err),
        )
        spool = Spool.open(
            plan.spool_path, key=plan.key, origin=f"after a corrupt spool moved to {moved.name}"
        )
    try:
        spool.check_key()
    except BaseException:
        spool.close()
        raise
    return spool


def _record(
    spool: Spool, plan: RunPlan, content: dict[str, Any], log: ActivityLog
) -> tuple[Spool, RawRecord]:
    try:
        before = spool.state().dropped_unshipped
        row = spool.append(content, max_records=plan.max_records)
    except SpoolCorruptError:
        if not plan.move_corrupt_aside:
            raise
        spool.close()
        spool = open_spool(plan, log)
        return spool, spool.append(content, max_records=plan.max_records)  # (a new chain drops nothing)
    lost = spool.state().dropped_unshipped - before
    if lost:
        log.event(
            "spool_dropped_unshipped",
            f"spool full (max_records {plan.max_records}): {lost} decision(s) dropped unacknowledged, the "
            "oldest first; the decision-log service had not acknowledged them (it may yet have stored them: "
            "see pyagent agent status)",
            dropped=lost,
        )
    return spool, row


def _decide_and_record(
    spool: Spool,
    plan: RunPlan,
    config: AgentConfig,
    engines: EngineHolder,
    flags: FactFlags,
    out: Callable[[str], None],
    log: ActivityLog,
) -> tuple[Spool, int]:
    result = run_once(config, engines, flags)
    try:
        spool, row = _record(spool, plan, result.content, log)
    except SpoolCorruptError:
        raise
    except SpoolError as err:  # a full disk, a spool made read-only: say what was not kept
        raise SpoolError(f"{err}; this run's decision was not recorded: {result.summary}") from err
    out(
        json.dumps(
            {
                "event": "recorded",
                "seq": row.seq,
                "id": row.id,
                "hash": row.hash,
                "outcome": result.outcome,
                "exit_code": result.exit_code,
            }
        )
    )
    log.event(
        "recorded",
        f"seq {row.seq} recorded: {result.summary}",
        seq=row.seq,
        id=row.id,
        outcome=result.outcome,
        exit_code=result.exit_code,
    )
    if result.traceback is not None:  # a bug: the run is recorded as no decision, its traceback logged
        told = f"seq {row.seq}: no decision {UNFORESEEN}"
        log.event("internal_error", told, seq=row.seq, traceback=result.traceback)
    return spool, result.exit_code


def run_agent(
    plan: RunPlan,
    config: AgentConfig,
    engines: EngineHolder,
    out: Callable[[str], None],
    log: ActivityLog,
    plugins: Plugins | None = None,
    flags: FactFlags | None = None,
) -> int:
    """The agent loop. Returns the last run's exit code with ``once``, else 0 after a stop signal."""
    plugins = plugins or Plugins()
    flags = flags or FactFlags()
    spool = open_spool(plan, log)
    exit_code = 0
    try:
        with StopFlag() as stop:
            bundle, bundle_delay = plugins.bundle, None
            if bundle is not None:
                bundle.start()
                if bundle.active:  # one that does not load is forgotten (and told) before the download
                    engines.preload()
                # a run without a policy yet downloads it first, as does a one-off run (the newest
                # policy for its one decision); a persisted bundle decides at once, as OPA's does, and
                # the download runs in its thread: a service that does not answer holds back nothing
                if plan.once or not bundle.active:
                    wait = ONCE_WAIT_SECONDS if bundle.active else None  # (none yet: the run needs it)
                    first = first_download(plugins, stop.event, log, limit=wait)
                    if first is None:  # a stop signal during that download: no decision is begun
                        log.event("stopped", f"stopped by {stop.signal_name}", signal=stop.signal_name)
                        return 3 if plan.once else 0  # (a one-off run that decided nothing: never 0)
                    bundle_delay = first
            if plan.once:
                spool, exit_code = _decide_and_record(spool, plan, config, engines, flags, out, log)
                if plugins.logs is not None:
                    logs = plugins.logs
                    guarded(log, "decision_logs", lambda: logs.step(spool))
                if plugins.status is not None:
                    guarded(log, "status", plugins.status.step)
                return exit_code
            with PluginThreads(plugins, stop.event, log, plan.spool_path, plan.key, bundle_delay):
                while True:
                    spool, exit_code = _decide_and_record(spool, plan, config, engines, flags, out, log)
                    if stop.event.is_set() or stop.sleep(next_delay(plan.interval, plan.jitter)):
                        break
            if stop.signal_name:
                log.event("stopped", f"stopped by {stop.signal_name}", signal=stop.signal_name)
    finally:
        spool.close()
    return exit_code if plan.once else 0
