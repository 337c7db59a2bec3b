"""The last status message's outcome is kept in the state directory and shown by ``agent status``: a
status service that refuses every message (a token rotated away) is seen there, not only in the log."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pyagent.agent.http import ServiceClient
from pyagent.agent.plugins.status import STATE_FILE, StatusPlugin
from pyagent.agent.statusview import LOW_FREE_BYTES, status_document, status_lines
from pyagent.config.opa import Service
from tests.agent.conftest import run_pyagent, write_config
from tests.helpers.fault_server import Fault, fault_server

REFUSED = Fault(status=401, body=b'{"code": "unauthorized", "message": "token rotated"}')
TAKEN = Fault(status=204, body=b"", content_type=None)


def _plugin(url: str, state_dir: Path, told: list[tuple[str, str, dict[str, Any]]]) -> StatusPlugin:
    return StatusPlugin(
        ServiceClient(Service("s", url)), {}, lambda: "d-1", bundles=[], logs=None,
        notify=lambda *event: told.append(event), state_dir=lambda: state_dir,
    )  # fmt: skip


def _kept(state_dir: Path) -> dict[str, Any]:
    return dict(json.loads((state_dir / STATE_FILE).read_text()))


def test_a_refused_message_then_a_taken_one_are_kept_and_shown(tmp_path: Path) -> None:
    told: list[tuple[str, str, dict[str, Any]]] = []
    spool = tmp_path / "spool.sqlite"
    with fault_server(REFUSED, TAKEN) as url:
        status = _plugin(url, tmp_path, told)
        error = f"{url}/status: HTTP 401: token rotated"

        assert 2.5 <= status.step() <= 5.0  # (the first retry: 5 s, scaled by a random factor in [0.5, 1])
        failed = _kept(tmp_path)
        assert failed == {"last_attempt_at": failed["last_attempt_at"], "last_ok_at": None,
                          "last_error": error, "service": f"{url}/status"}  # fmt: skip
        shown = status_document(spool, None, tmp_path, f"{url}/status")
        assert status_lines(shown)[0] == (
            f"status: {url}/status (last attempt {failed['last_attempt_at']}, error: {error})"
        )

        assert status.step() == status.period
        taken = _kept(tmp_path)
        assert (taken["last_error"], taken["last_ok_at"]) == (None, taken["last_attempt_at"])
        shown = status_document(spool, None, tmp_path, f"{url}/status")
        assert shown["status_upload"] == {**taken, "service": f"{url}/status"}
        assert status_lines(shown)[0] == (
            f"status: {url}/status (last attempt {taken['last_attempt_at']}, ok at {taken['last_ok_at']})"
        )
    assert [name for name, _, _ in told] == ["status_failed"]


def test_an_outcome_kept_for_another_service_is_not_shown_for_this_one(tmp_path: Path) -> None:
    """[status] pointed elsewhere since: the old service's error was shown under the new URL."""
    with fault_server(REFUSED) as url:
        _plugin(url, tmp_path, []).step()
    shown = status_document(tmp_path / "spool.sqlite", None, tmp_path, "https://new.example/status")
    assert status_lines(shown)[0] == "status: https://new.example/status (no message sent yet)"


def test_no_message_yet_and_no_status_service(tmp_path: Path) -> None:
    spool = tmp_path / "spool.sqlite"
    shown = status_document(spool, None, tmp_path, "https://plane.example/status")
    assert shown["status_upload"] == {"service": "https://plane.example/status", "last_attempt_at": None,
                                      "last_ok_at": None, "last_error": None}  # fmt: skip
    assert status_lines(shown)[0] == "status: https://plane.example/status (no message sent yet)"
    unconfigured = status_document(spool, None, tmp_path, None)
    assert unconfigured["status_upload"] is None
    assert not any(line.startswith("status:") for line in status_lines(unconfigured))


def test_an_unreadable_state_file_is_said_not_taken_for_success(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("[1, 2]")
    (tmp_path / STATE_FILE).chmod(0o600)
    document = status_document(tmp_path / "spool.sqlite", None, tmp_path, "http://p/status")
    shown = document["status_upload"]
    assert shown["last_error"] == f"{tmp_path / STATE_FILE}: unreadable: not a JSON object"
    assert status_lines(document)[0] == (  # (the time of an attempt not known was Python's "None")
        f"status: http://p/status (last attempt (unknown), error: {tmp_path / STATE_FILE}: unreadable: not a "
        "JSON object)"
    )
    (tmp_path / STATE_FILE).unlink()
    (tmp_path / STATE_FILE).symlink_to(tmp_path / "elsewhere.json")
    shown = status_document(tmp_path / "spool.sqlite", None, tmp_path, "http://p/status")["status_upload"]
    assert shown["last_error"].startswith(f"{tmp_path / STATE_FILE}: unreadable: ")
    assert "link" in shown["last_error"] and shown["last_ok_at"] is None


def test_a_state_directory_that_cannot_keep_the_outcome_is_told_and_messages_go_on(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).mkdir()  # the rename onto it fails
    told: list[tuple[str, str, dict[str, Any]]] = []
    with fault_server(TAKEN) as url:
        status = _plugin(url, tmp_path, told)
        assert status.step() == status.period
    assert status.state.last_error is None and status.state.last_ok_at is not None
    [(name, text, _)] = told
    assert name == "status_state_failed"
    assert text.startswith(f"status: cannot keep the last outcome in {tmp_path / STATE_FILE}: ")


def test_an_unusable_state_directory_stops_no_agent(tmp_path: Path) -> None:
    """A [status] table asked for the state directory when the agent started: one that group may
    write stopped an agent whose spool is elsewhere and which keeps no bundle (exit 2)."""
    state = tmp_path / "state"
    state.mkdir(mode=0o775)
    state.chmod(0o775)
    with fault_server(TAKEN) as url:
        config = write_config(
            tmp_path / "agent.toml", spool_path=str(tmp_path / "spool.sqlite"), interval=0,
            state_dir=str(state),
        )  # fmt: skip
        with config.open("a") as more:
            more.write(f'[services.plane]\nurl = "{url}"\n[status]\nservice = "plane"\n')
        done = run_pyagent("agent", "run", "--once", "--config", str(config))
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "cannot keep the last outcome" in line]
    assert len(said) == 1 and "writable by group or others" in said[0], done.stderr
    assert not (state / STATE_FILE).exists()


def test_a_spool_whose_file_system_is_full_is_said_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full state directory stopped every run (exit 2, said once on stderr), and `agent status` showed
    the last run recorded before it as if nothing were wrong."""
    spool = tmp_path / "spool.sqlite"
    roomy = status_document(spool, None, tmp_path, None)
    assert isinstance(roomy["free_bytes"], int)
    assert not any("bytes free" in line for line in status_lines({**roomy, "free_bytes": LOW_FREE_BYTES}))
    full = {**roomy, "free_bytes": 4096}
    assert status_lines(full)[-1] == (
        "spool: its file system has 4,096 bytes free: a run that cannot be recorded stops the agent "
        "(exit 2); make room there"
    )
    monkeypatch.setattr(os, "statvfs", lambda _: (_ for _ in ()).throw(OSError("no file system")))
    assert status_document(spool, None, tmp_path, None)["free_bytes"] is None
