"""One agent at a time: a second `agent run` on a spool or a state directory in use is refused at once
(exit 2, one line naming the lock and its holder), and the lock goes with the process that held it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pyagent.agent.lock import agent_locks, held
from pyagent.errors import InvalidInputError
from tests.agent.conftest import REPO, pyagent_env, run_pyagent


def start_agent(config: Path) -> subprocess.Popen[str]:
    """`agent run` with a long interval, once it has recorded its first run (it holds its locks)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pyagent", "agent", "run", "--interval", "3600", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=pyagent_env(),
        cwd=REPO,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert json.loads(first)["seq"] == 1, process.stderr.read() if process.stderr else ""
    return process


def stop(process: subprocess.Popen[str], sig: int) -> None:
    process.send_signal(sig)
    process.communicate(timeout=60)


def test_a_second_agent_on_a_spool_in_use_is_refused_until_the_first_stops(
    tmp_path: Path, config_file: Callable[..., Path], policy_bundle: Path
) -> None:
    config = config_file()
    first = start_agent(config)
    try:
        second = run_pyagent("agent", "run", "--once", "--config", str(config))
        lock = tmp_path / "spool.sqlite.lock"
        assert (second.returncode, second.stdout, second.stderr) == (
            2,
            "",
            f"pyagent: error: {lock}: another pyagent agent (process {first.pid}) runs on this spool; one "
            "agent at a time (stop it first, or give this one its own --state-dir)\n",
        )
    finally:
        stop(first, signal.SIGTERM)
    assert first.returncode == 0
    again = run_pyagent("agent", "run", "--once", "--config", str(config))
    assert (again.returncode, json.loads(again.stdout)["seq"]) == (0, 2), again.stderr


def test_a_killed_agent_leaves_no_lock_behind(
    tmp_path: Path, config_file: Callable[..., Path], policy_bundle: Path
) -> None:
    config = config_file()
    first = start_agent(config)
    stop(first, signal.SIGKILL)
    assert (tmp_path / "spool.sqlite.lock").read_text() == f"{first.pid}\n"  # the file stays, not the lock
    again = run_pyagent("agent", "run", "--once", "--config", str(config))
    assert (again.returncode, json.loads(again.stdout)["seq"]) == (0, 2), again.stderr


def test_two_agents_keeping_bundles_in_one_state_directory_with_spools_elsewhere(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    with agent_locks(tmp_path / "a" / "spool.sqlite", state):
        with pytest.raises(InvalidInputError) as refused, agent_locks(tmp_path / "b" / "spool.sqlite", state):
            pass  # (the second agent's spool is free; its state directory is not)
        assert str(refused.value) == (
            f"{state / 'agent.lock'}: another pyagent agent (process {os.getpid()}) runs on this state "
            "directory; one agent at a time (stop it first, or give this one its own --state-dir)"
        )
        assert (tmp_path / "b" / "spool.sqlite.lock").exists()
        with agent_locks(tmp_path / "b" / "spool.sqlite", None):  # the refused one let go of its spool
            pass
    with agent_locks(tmp_path / "b" / "spool.sqlite", state):  # and the first one of both
        pass


def test_an_agent_with_its_spool_in_the_state_directory_holds_that_directory_too(tmp_path: Path) -> None:
    """A race audit found two agents on one state directory, one with its spool there (which held only
    the spool's lock) and one with its spool elsewhere (which held only agent.lock)."""
    with agent_locks(tmp_path / "spool.sqlite", tmp_path):
        with (
            pytest.raises(InvalidInputError) as refused,
            agent_locks(tmp_path / "other" / "s.sqlite", tmp_path),
        ):
            pass
        assert str(refused.value).startswith(f"{tmp_path / 'agent.lock'}: another pyagent agent")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["agent.lock", "other", "spool.sqlite.lock"]


def test_a_lock_that_is_a_link_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("kept\n")
    (tmp_path / "spool.sqlite.lock").symlink_to(target)
    with pytest.raises(InvalidInputError) as refused, held(tmp_path / "spool.sqlite.lock", "spool"):
        pass
    assert str(refused.value) == (
        f"{tmp_path / 'spool.sqlite.lock'}: cannot open the lock of the spool: it is a symbolic link"
    )
    assert target.read_text() == "kept\n"


def test_an_agent_whose_spool_is_removed_while_it_runs_stops(
    tmp_path: Path, config_file: Callable[..., Path], policy_bundle: Path
) -> None:
    """Its state directory removed, the agent went on saying "recorded" into the deleted file (its
    records read by no one, lost at exit 0), and its lock was gone too: it stops at its next run, exit 2."""
    spool = tmp_path / "spool.sqlite"
    command = ["agent", "run", "--interval", "0.5", "--config", str(config_file())]
    agent = subprocess.Popen(
        [sys.executable, "-m", "pyagent", *command],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=pyagent_env(), cwd=REPO,
    )  # fmt: skip
    assert agent.stdout is not None
    assert json.loads(agent.stdout.readline())["seq"] == 1
    for path in tmp_path.glob("spool.sqlite*"):  # the spool, its side files, its lock and marker
        path.unlink()
    try:
        out, err = agent.communicate(timeout=60)
    finally:
        agent.kill()
    assert agent.returncode == 2
    assert err.splitlines()[-1].startswith(
        f"pyagent: error: {spool}: the spool was removed or replaced while the agent ran; no decision is "
        "recorded into a file no one can read again (restart the agent); this run's decision was not "
        "recorded: "
    )
    assert all(json.loads(line)["seq"] <= 2 for line in out.splitlines())  # (one run may have been under way)
