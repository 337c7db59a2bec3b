"""What the agent does when its spool's files are not as it left them: a spool moved aside while it
runs (the uploads follow the new one), a spool deleted beside its write-ahead log (refused, naming
it), and a full spool dropping decisions never uploaded (said when it happens)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pyagent.agent.chain import ChainKey
from pyagent.agent.http import ServiceClient
from pyagent.agent.plugins.logs import DecisionLogPlugin
from pyagent.agent.store import Spool, SpoolError, move_aside
from pyagent.agent.threads import PluginThreads
from pyagent.agent.wiring import Plugins
from pyagent.config.opa import DecisionLogs, Service
from tests.agent.collector import run_collector
from tests.agent.conftest import decided, fill, run_pyagent


class _Uploads:
    """A decision-log plug-in that notes which chain each upload reads."""

    def __init__(self) -> None:
        self.config = SimpleNamespace(min_delay=0.05)
        self.client = SimpleNamespace(service=SimpleNamespace(timeout=1.0))
        self.chains: list[str] = []

    def step(self, spool: Spool) -> float:
        self.chains.append(spool.state().chain_id)
        return 0.05


class _Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def event(self, name: str, text: str, **fields: object) -> None:
        self.events.append((name, text))


def _until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_the_uploads_follow_a_spool_moved_aside_and_made_again(tmp_path: Path) -> None:
    """The decisions move a corrupt spool aside and start another (--move-corrupt-aside): the uploads
    kept reading the moved one, and the new chain's decisions went nowhere until a restart."""
    path = tmp_path / "spool.sqlite"
    fill(path, 2)
    with Spool.open(path, key=ChainKey(), readonly=True) as spool:
        first = spool.state().chain_id
    uploads, log = _Uploads(), _Log()
    plugins: Any = Plugins(logs=uploads)  # type: ignore[arg-type]
    with PluginThreads(plugins, threading.Event(), log, path, ChainKey(), bundle_delay=1.0):
        assert _until(lambda: first in uploads.chains)
        move_aside(path)
        fill(path, 1)
        with Spool.open(path, key=ChainKey(), readonly=True) as spool:
            second = spool.state().chain_id
        assert _until(lambda: second in uploads.chains), (first, second, uploads.chains[-3:])
    assert second != first and log.events == []


def test_a_spool_deleted_beside_its_write_ahead_log_is_refused_naming_it(tmp_path: Path) -> None:
    """SQLite would replay the old log into a new spool, which would then read as corrupt at every
    start, and the decisions in the log would be lost without a word."""
    path = tmp_path / "spool.sqlite"
    wal = tmp_path / "spool.sqlite-wal"
    wal.write_bytes(b"\x37\x7f\x06\x82" + bytes(4092))
    with pytest.raises(SpoolError) as refused:
        Spool.open(path, key=ChainKey())
    assert str(refused.value) == (
        f"{path}: the spool is missing, but {wal} (4,096 bytes) of the one that was here is not: it may "
        "hold recorded decisions; restore the spool, or move both away before the agent starts a new one"
    )
    assert not path.exists() and wal.stat().st_size == 4096
    wal.write_bytes(b"")  # an empty log holds nothing, and SQLite rebuilds a stale shared memory file
    (tmp_path / "spool.sqlite-shm").write_bytes(bytes(32768))
    with Spool.open(path, key=ChainKey()) as spool:
        assert spool.counts() == (0, 0)


def test_a_full_spool_says_when_it_drops_decisions_never_uploaded(
    tmp_path: Path, config_file: Callable[..., Path], policy_bundle: Path
) -> None:
    fill(tmp_path / "spool.sqlite", 3, max_records=3)  # none uploaded
    done = run_pyagent("agent", "run", "--once", "--config", str(config_file(max_records=3)))
    assert done.returncode in (0, 1), done.stderr
    assert (
        "spool full (max_records 3): 1 decision(s) dropped unacknowledged, the oldest first; the "
        "decision-log service had not acknowledged them (it may yet have stored them: "
        "see pyagent agent status)"
    ) in done.stderr


def test_a_record_edited_on_disk_is_set_aside_not_uploaded_as_it_is(tmp_path: Path) -> None:
    """Valid JSON that no longer gives its hash: the server cannot tell (the hash covers what the event
    leaves out), so the agent must: it went up without a word."""
    path = tmp_path / "spool.sqlite"
    with Spool.open(path, key=ChainKey()) as spool:
        for i in range(4):
            spool.append(decided(i), max_records=100)
        body = spool.records()[2].body
        edited = body.replace('"policy_revision":"x"', '"policy_revision":"y"', 1)
        assert edited != body
        spool._conn.execute("UPDATE records SET body = ? WHERE seq = 3", (edited,))
        # NaN: JSON to Python's reader, not to the chain's (an exception held every later upload back)
        not_strict = spool.records()[3].body.replace('"exit_code":0', '"exit_code":NaN', 1)
        spool._conn.execute("UPDATE records SET body = ? WHERE seq = 4", (not_strict,))
        with run_collector() as collector:
            config = DecisionLogs(service="logs", upload_size_limit_bytes=32768, min_delay=1, max_delay=2)
            uploads = DecisionLogPlugin(config, ServiceClient(Service("logs", collector.url, timeout=2)), {})
            assert uploads.upload(spool) is None
            assert sorted(event["decision_id"] for event in collector.stored.values()) == ["d-0", "d-1"]
        count, aside = spool.set_aside_list()
        reasons = sorted((entry["seq"], entry["reason"]) for entry in aside)
        reason = "record seq {} does not give its hash (edited?); run `pyagent log verify`"
        assert (count, reasons) == (2, [(seq, reason.format(seq)) for seq in (3, 4)])
    verified = run_pyagent("log", "verify", "--db", str(path))  # (it stopped with a traceback on the NaN)
    assert verified.returncode == 1 and "Traceback" not in verified.stderr, verified.stderr


def test_a_spool_corrupted_while_the_agent_runs_is_still_moved_aside_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting the decisions a full spool drops read the spool before the move-aside could happen:
    the agent stopped on a spool it had been told to move aside."""
    from pyagent.agent import runner
    from pyagent.agent.cycle import RunResult
    from tests.agent.conftest import synthetic

    path = tmp_path / "spool.sqlite"
    fill(path, 2)
    plan = runner.RunPlan(path, ChainKey(), 100, 0.0, 0.0, True, move_corrupt_aside=True)
    log = _Log()
    spool = runner.open_spool(plan, log)  # type: ignore[arg-type]
    with Spool.open(path, key=ChainKey()) as other:  # corrupted under the running agent
        other._conn.execute("DELETE FROM meta WHERE key = 'dropped_unshipped'")
    result = RunResult("compliant", 0, synthetic(1), "compliant")
    monkeypatch.setattr(runner, "run_once", lambda *args, **kwargs: result)
    spool, code = runner._decide_and_record(spool, plan, None, None, None, lambda line: None, log)  # type: ignore[arg-type]
    try:
        assert (code, spool.state().head_seq) == (0, 1)  # a new chain, holding this run
        assert [name for name, _ in log.events] == ["spool_moved_aside", "recorded"]
    finally:
        spool.close()


def test_a_spool_deleted_is_not_replaced_by_a_new_chain_without_a_word(
    tmp_path: Path, config_file: Callable[..., Path], policy_bundle: Path
) -> None:
    """A spool deleted whole (and its decisions with it) gave a new chain at seq 1, as if none had been
    made: now the agent refuses to start, naming the note it left, until the spool is restored or
    moved aside on purpose (which moves the note with it)."""
    path = tmp_path / "spool.sqlite"
    fill(path, 3)
    marker = tmp_path / "spool.sqlite.made"
    assert marker.read_text().startswith("a pyagent spool was made here (spool.sqlite) by ")
    path.unlink()
    config = str(config_file())
    for command in (("agent", "status"), ("log", "verify")):  # they said "the agent has not run yet"
        shown = run_pyagent(*command, "--config", config)
        missing = "the spool is missing, though one was made here"
        assert (shown.returncode, missing in shown.stderr) == (2, True), command
    refused = run_pyagent("agent", "run", "--once", "--config", config)
    assert refused.returncode == 2 and not path.exists()
    assert refused.stderr.strip().endswith(
        f"{path}: the spool is missing, though one was made here ({marker} says so); a new chain would "
        "hide that the decisions it held are gone; move it aside and start a new chain with "
        "`pyagent agent run --move-corrupt-aside`"
    ), refused.stderr
    moved = run_pyagent("agent", "run", "--once", "--move-corrupt-aside", "--config", config)
    assert moved.returncode in (0, 1), moved.stderr
    assert (
        "a new chain starts" in moved.stderr and len(list(tmp_path.glob("spool.sqlite.corrupt-*.made"))) == 1
    )
    assert marker.exists() and path.exists()  # the new chain's own note


def test_a_decision_the_spool_could_not_keep_is_said_not_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk: the error said the spool could not be written, not that this run's decision is lost."""
    from pyagent.agent import runner
    from pyagent.agent.cycle import RunResult
    from pyagent.agent.store import SpoolError
    from tests.agent.conftest import synthetic

    path = tmp_path / "spool.sqlite"
    plan = runner.RunPlan(path, ChainKey(), 100, 0.0, 0.0, True, move_corrupt_aside=False)
    log = _Log()
    spool = runner.open_spool(plan, log)  # type: ignore[arg-type]
    result = RunResult(
        "non_compliant", 1, synthetic(1), "non-compliant for eu-commission (eu-commission/tiktok)"
    )
    monkeypatch.setattr(runner, "run_once", lambda *args, **kwargs: result)

    def full(*args: object, **kwargs: object) -> None:
        raise SpoolError(f"{path}: cannot write to the spool: database or disk is full")

    monkeypatch.setattr(spool, "append", full)
    try:
        with pytest.raises(SpoolError) as refused:
            runner._decide_and_record(spool, plan, None, None, None, lambda line: None, log)  # type: ignore[arg-type]
        assert str(refused.value) == (
            f"{path}: cannot write to the spool: database or disk is full; this run's decision was not "
            "recorded: non-compliant for eu-commission (eu-commission/tiktok)"
        )
    finally:
        spool.close()


def test_a_spool_moved_aside_is_named_by_agent_status(
    tmp_path: Path, config_file: Callable[..., Path], policy_bundle: Path
) -> None:
    """Its records not yet uploaded are left there, and agent status named neither the file nor them."""
    path = tmp_path / "spool.sqlite"
    fill(path, 3)
    with path.open("r+b") as spool:
        spool.truncate(4096)  # the first page only
    config = str(config_file())
    moved = run_pyagent("agent", "run", "--once", "--move-corrupt-aside", "--config", config)
    assert moved.returncode in (0, 1), moved.stderr
    [aside] = [p for p in tmp_path.glob("spool.sqlite.corrupt-*") if not p.name.endswith(".made")]
    shown = run_pyagent("agent", "status", "--config", config)
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr.splitlines()[0] == (
        f"spool moved aside: {aside} (corrupt; the agent no longer uploads its records: pyagent log verify "
        f"--db {aside} reads what it can)"
    )
    as_json = run_pyagent("agent", "status", "--format", "json", "--config", config)
    assert json.loads(as_json.stdout)["moved_aside"] == [str(aside)]
