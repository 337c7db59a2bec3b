"""An error no code path foresaw (a bug) in a long-running agent: the run or the plug-in still ends
as a failure (never an allow) and the agent goes on, and its traceback is kept for the bug report,
in the activity log's file or, without one, on stderr. A foreseen failure (a :class:`PyagentError`,
an ``OSError``) is told in one line, without one."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from pyagent.agent.chain import ChainKey
from pyagent.agent.cycle import NO_DECISION, EngineHolder, run_once
from pyagent.agent.runner import ActivityLog
from pyagent.agent.store import Spool
from pyagent.agent.threads import RETRY_AFTER_FAILURE, UNFORESEEN, PluginThreads, guarded
from pyagent.agent.wiring import Plugins
from pyagent.config.agent import AgentConfig
from pyagent.engines.base import Engine, EngineSettings
from pyagent.errors import NoDecisionError
from tests.agent.conftest import DEVICE


def _lookup_bug() -> float:
    return {"bundle": 1.0}["bundles"]  # a KeyError: no code foresees it


def _network_down() -> float:
    raise ConnectionRefusedError(111, "Connection refused")


def test_a_plug_ins_bug_is_retried_and_its_traceback_kept_in_the_log_file(tmp_path: Path) -> None:
    told: list[str] = []
    log = ActivityLog(tmp_path / "agent.log", told.append)
    assert guarded(log, "bundle", _lookup_bug) == RETRY_AFTER_FAILURE
    assert guarded(log, "status", _network_down) == RETRY_AFTER_FAILURE
    log.close()
    assert told == [
        f"pyagent: agent: bundle: KeyError: 'bundles' {UNFORESEEN}",
        "pyagent: agent: status: ConnectionRefusedError: [Errno 111] Connection refused",
    ]
    bug, down = (json.loads(line) for line in (tmp_path / "agent.log").read_text().splitlines())
    stack = bug.pop("traceback").splitlines()
    where = [line.strip() for line in stack if line.strip().startswith("return {")]
    assert (stack[0], where, stack[-1]) == (
        "Traceback (most recent call last):",
        ['return {"bundle": 1.0}["bundles"]  # a KeyError: no code foresees it'],
        "KeyError: 'bundles'",
    )
    assert {k: v for k, v in bug.items() if k != "at"} == {
        "event": "plugin_failed",
        "plugin": "bundle",
        "error": "'bundles'",
    }
    assert {k: v for k, v in down.items() if k != "at"} == {
        "event": "plugin_failed",
        "plugin": "status",
        "error": "[Errno 111] Connection refused",
    }


def test_without_a_log_file_the_traceback_goes_to_stderr() -> None:
    told: list[str] = []
    guarded(ActivityLog(None, told.append), "status", _lookup_bug)
    assert (told[0], told[1], told[-1]) == (
        f"pyagent: agent: status: KeyError: 'bundles' {UNFORESEEN}",
        "pyagent: agent:   Traceback (most recent call last):",
        "pyagent: agent:   KeyError: 'bundles'",
    )


def _engine_that(error: Exception) -> EngineHolder:
    def build() -> tuple[Engine, dict[str, dict[str, str]]]:
        raise error

    return EngineHolder(EngineSettings(engine="embedded"), loader=build)


def test_a_runs_bug_is_no_decision_with_its_traceback_and_a_foreseen_failure_without() -> None:
    config = AgentConfig(device=dict(DEVICE))
    bug = run_once(config, _engine_that(ZeroDivisionError("division by zero")))
    assert (bug.outcome, bug.exit_code, bug.content["allow"], bug.content["error"]) == (
        NO_DECISION,
        3,
        None,
        "internal error: ZeroDivisionError: division by zero",
    )
    assert (
        bug.traceback is not None and bug.traceback.splitlines()[-1] == "ZeroDivisionError: division by zero"
    )
    full = run_once(config, _engine_that(OSError(28, "No space left on device")))  # the machine's, no bug
    assert (full.outcome, full.exit_code, full.content["error"], full.traceback) == (
        NO_DECISION, 3, "OSError: [Errno 28] No space left on device", None
    )  # fmt: skip
    foreseen = run_once(config, _engine_that(NoDecisionError("http://127.0.0.1:9/: connection refused")))
    assert (foreseen.outcome, foreseen.exit_code, foreseen.content["error"], foreseen.traceback) == (
        NO_DECISION,
        3,
        "http://127.0.0.1:9/: connection refused",
        None,
    )


def test_a_bug_opening_the_spool_for_uploads_is_told_and_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The uploads' thread opens the spool outside ``guarded``: an unforeseen error there ended the
    thread (decisions piled up, never uploaded); it is told with its traceback, and the next upload
    tries again."""

    def broken_open(*_args: object, **_kwargs: object) -> Spool:
        raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(Spool, "open", broken_open)
    told: list[str] = []
    log = ActivityLog(tmp_path / "agent.log", told.append)
    threads = PluginThreads(Plugins(), threading.Event(), log, tmp_path / "spool.sqlite", ChainKey(), None)
    assert threads._open_spool() is None  # (the thread's own call: it goes on, and tries at the next upload)
    log.close()
    event = json.loads((tmp_path / "agent.log").read_text())
    error = (
        "UnicodeEncodeError: 'utf-8' codec can't encode character '\\udcff' in position 0: "
        "surrogates not allowed"
    )
    assert (told, event["event"], event["traceback"].splitlines()[-1]) == (
        [f"pyagent: agent: decision_logs: {error} {UNFORESEEN}"],
        "plugin_failed",
        error,
    )
