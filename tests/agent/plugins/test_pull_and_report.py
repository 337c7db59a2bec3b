"""The agent against a real ``pyagent server run``: it pulls the signed wasm bundle (ETag, 304), decides
with it, uploads the decision as an OPA decision-log event and reports its status; long polls wake on
a publish; a server that is down loses no decision."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.agent.conftest import DEVICE, run_pyagent
from tests.agent.plugins.conftest import (
    Builds,
    agent_config,
    bundle_status,
    control_plane,
    run_agent,
    spool_bodies,
    start_agent,
    wait_for,
)


def test_once_pulls_decides_uploads_and_reports(tmp_path: Path, builds: Builds) -> None:
    state = tmp_path / "state"
    with control_plane(tmp_path) as plane:
        config = plane.agent_with_r1(tmp_path, builds, state)
        first = run_agent("--once", "--config", str(config))
        assert first.returncode == 0, first.stderr
        assert "bundle pyagent: revision r1 active" in first.stderr
        recorded = json.loads(first.stdout)
        assert recorded["seq"] == 1
        status = bundle_status(state)
        assert (status["active_revision"], status["active_serial"], status["http_code"]) == ("r1", 1, 200)
        assert (state / "bundles" / "pyagent" / "last-good-bundle.tar.gz").read_bytes() == (
            builds.wasm["r1"].read_bytes()
        )
        body = spool_bodies(state)[0]
        assert body["bundles"] == {"pyagent": {"revision": "r1"}}
        assert body["input"]["report"]["device"]["id"] == DEVICE["id"]
        assert body["input"]["at"] == body["decision"]["evaluated_at"]

        device = plane.device()
        assert device is not None
        assert device["decision_id"] == body["decision"]["decision_id"]
        assert device["bundles"] == {"pyagent": {"revision": "r1"}}
        assert device["sender"] == DEVICE["id"]
        assert device["decision"]["allow"] == body["decision"]["allow"]
        assert device["status"]["bundles"]["pyagent"]["active_revision"] == "r1"
        assert device["status"]["errors"] == []

        second = run_agent("--once", "--config", str(config))  # unchanged: If-None-Match -> 304
        assert second.returncode == first.returncode, second.stderr
        again = bundle_status(state)
        assert again["http_code"] == 304
        assert again["last_successful_activation"] == status["last_successful_activation"]
        assert again["last_successful_download"] == status["last_successful_download"]
        assert again["last_successful_request"] > status["last_successful_request"]
        history = plane.device()["history"]  # type: ignore[index]
        assert sorted(h["decision_id"] for h in history) == sorted(
            b["decision"]["decision_id"] for b in spool_bodies(state)
        )

        shown = json.loads(run_agent_status(config).stdout)
        assert shown["pending"] == 0 and shown["set_aside"] == {"count": 0, "records": []}
        assert shown["bundles"][0]["active_revision"] == "r1" and shown["bundles"][0]["last_refusal"] is None
        assert shown["collector"] == f"{plane.server.url}/logs"
        upload = shown["status_upload"]
        assert (upload["service"], upload["last_error"]) == (f"{plane.server.url}/status", None)
        assert upload["last_ok_at"] == upload["last_attempt_at"] and upload["last_ok_at"] is not None


def run_agent_status(config: Path):  # type: ignore[no-untyped-def]
    return run_pyagent("agent", "status", "--config", str(config), "--format", "json")


def test_long_poll_is_woken_by_a_publish(tmp_path: Path, builds: Builds) -> None:
    state = tmp_path / "state"
    with control_plane(tmp_path) as plane:
        config = plane.agent_with_r1(tmp_path, builds, state, long_poll=30)
        log = tmp_path / "agent.log"
        agent = start_agent("--config", str(config), log=log)
        try:
            wait_for("r1 active", lambda: bundle_status(state).get("active_revision") == "r1", 20, log)
            wait_for("r1 reported", lambda: _reported(plane, "r1"), 10, log)
            time.sleep(0.5)  # the agent is now in a long poll (polling delays are 20-30 s)
            published = time.monotonic()
            plane.publish(builds.rego["r2"], builds.wasm["r2"])
            wait_for("r2 active", lambda: bundle_status(state).get("active_revision") == "r2", 5, log)
            activated = time.monotonic() - published
            wait_for("r2 reported to the server", lambda: _reported(plane, "r2"), 5, log)
            assert activated < 5
            assert bundle_status(state)["active_serial"] == 2
        finally:
            agent.send_signal(signal.SIGTERM)  # while it holds its next long poll
            assert agent.wait(timeout=10) == 0, log.read_text()[-2000:]
        assert "stopped by SIGTERM" in log.read_text()
        assert list((state / "bundles" / "pyagent").glob(".download-*")) == []  # (the poll's file: left)


def test_a_failed_download_names_the_url_that_answered(tmp_path: Path, builds: Builds) -> None:
    """Nothing published yet: the server's 404 is told with the URL asked, as an OCI pull tells it
    (a resource mistyped, or on another host, reads as a path under the service's URL)."""
    state = tmp_path / "state"
    with control_plane(tmp_path) as plane:
        config = agent_config(
            tmp_path / "agent.toml", state_dir=state, server_url=plane.server.url, token=plane.agent_token,
            public_key=builds.public_key,
        )  # fmt: skip
        done = run_agent("--once", "--config", str(config))
        asked = f"{plane.server.url}/bundles/pyagent/wasm"
        assert done.returncode == 3, done.stderr
        told = f"GET {asked}: HTTP 404: no wasm build of bundle 'pyagent' is published"
        assert f"pyagent: agent: bundle pyagent: {told}" in done.stderr.splitlines()
        assert bundle_status(state)["message"] == told
        shown = run_pyagent("agent", "status", "--config", str(config)).stderr.splitlines()
        facts = f"device {DEVICE['id']}, organization {DEVICE['organization']}"
        assert f"  {facts}, policy (none), engine embedded" in shown  # no decision: no revision


def test_a_stop_signal_uploads_the_pending_decisions_before_the_agent_exits(
    tmp_path: Path, builds: Builds
) -> None:
    """As OPA's decision-log plug-in flushes when OPA stops: the next upload is ten minutes away when
    SIGTERM comes, and the decision recorded meanwhile is on the server when the agent has exited."""
    state = tmp_path / "state"
    with control_plane(tmp_path) as plane:
        config = plane.agent_with_r1(tmp_path, builds, state, report_delays=(600, 900))
        log = tmp_path / "agent.log"
        agent = start_agent("--config", str(config), log=log)
        try:
            wait_for("a decision recorded", lambda: "seq 1 recorded" in log.read_text(), 20, log)
            wait_for("r1 reported", lambda: bundle_status(state).get("active_revision") == "r1", 10, log)
            assert plane.device() is None  # no decision uploaded yet: the first upload is 600 s away
        finally:
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=30) == 0, log.read_text()[-2000:]
        recorded = [body["decision"]["decision_id"] for body in spool_bodies(state)]
        device = plane.device()
        assert device is not None, log.read_text()[-2000:]
        assert [past["decision_id"] for past in device["history"]] == recorded
        shown = json.loads(run_agent_status(config).stdout)
        assert shown["pending"] == 0


def _reported(plane, revision: str) -> bool:  # type: ignore[no-untyped-def]
    device = plane.device()
    if device is None or device["status"] is None:
        return False
    return bool(device["status"]["bundles"].get("pyagent", {}).get("active_revision") == revision)


def test_server_down_loses_no_decision(tmp_path: Path, builds: Builds) -> None:
    state = tmp_path / "state"
    with control_plane(tmp_path) as plane:
        plane.publish(builds.rego["r1"], builds.wasm["r1"])
        port = plane.server.port
        config = agent_config(
            tmp_path / "agent.toml",
            state_dir=state,
            server_url=plane.server.url,
            token=plane.agent_token,
            public_key=builds.public_key,
        )
        assert run_agent("--once", "--config", str(config)).returncode == 0
        plane.server.kill()
        for _ in range(3):  # the server is down: the persisted bundle decides, the records wait
            done = run_agent("--once", "--config", str(config))
            assert done.returncode == 0, done.stderr
            assert "connection refused" in done.stderr
        bodies = spool_bodies(state)
        assert len(bodies) == 4 and all(b["bundles"] == {"pyagent": {"revision": "r1"}} for b in bodies)
    with control_plane(tmp_path, port=port) as plane:
        done = run_agent("--once", "--config", str(config))
        assert done.returncode == 0, done.stderr
        ids = [b["decision"]["decision_id"] for b in spool_bodies(state)]
        history = plane.device()["history"]  # type: ignore[index]
        assert sorted(h["decision_id"] for h in history) == sorted(ids)  # all five, each once
        assert len(ids) == 5 == len(set(ids))
    status = bundle_status(state)
    assert status["active_revision"] == "r1" and status["code"] is None


def test_a_persisted_bundle_outlives_its_status_record(tmp_path: Path, builds: Builds) -> None:
    """``status.json`` is a record, not a trust anchor: cut short, the agent says so and decides with
    the persisted bundle (verified again as it loads); edited to another revision, the revision loaded
    is what the status and the decision log report."""
    state = tmp_path / "state"
    record = state / "bundles" / "pyagent" / "status.json"
    with control_plane(tmp_path) as plane:
        config = plane.agent_with_r1(tmp_path, builds, state)
        assert run_agent("--once", "--config", str(config)).returncode == 0
        plane.server.kill()
    record.write_text('{"name": "pyagent", "active_rev')
    done = run_agent("--once", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert (
        f"pyagent: agent: bundle pyagent: {record}: not JSON (Unterminated string starting at: line 1 "
        "column 21 (char 20)); its status starts over, and a persisted bundle is verified again as it loads"
    ) in done.stderr.splitlines()
    assert bundle_status(state)["active_revision"] == "r1"
    record.write_text(json.dumps({**bundle_status(state), "active_revision": "rev-999"}))
    done = run_agent("--once", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert bundle_status(state)["active_revision"] == "r1"
    assert [b["bundles"] for b in spool_bodies(state)] == [{"pyagent": {"revision": "r1"}}] * 3
