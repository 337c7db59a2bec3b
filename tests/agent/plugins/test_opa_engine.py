"""``--engine opa``: a real ``opa run --server`` (the same signed bundle, verified by OPA, logging its
decisions) decides; the agent's decision, and the event it uploads, carry OPA's own ``decision_id``."""

from __future__ import annotations

import json
from pathlib import Path

from tests.agent.plugins.conftest import (
    Builds,
    control_plane,
    run_agent,
    spool_bodies,
    wait_for,
)
from tests.helpers.opa_server import run_opa_server


def opa_decision_logs(log: Path) -> list[dict[str, object]]:
    entries = []
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("msg") == "Decision Log" and entry.get("decision_id"):
            entries.append(entry)
    return entries


def opa_decision_ids(log: Path) -> list[str]:
    return [str(entry["decision_id"]) for entry in opa_decision_logs(log)]


def test_the_uploaded_event_has_the_opa_servers_decision_id(
    tmp_path: Path, builds: Builds, opa_bin: str
) -> None:
    state = tmp_path / "state"
    opa_args = [
        "--verification-key",
        str(builds.public_key),
        "--log-level",
        "info",
        "--set",
        "decision_logs.console=true",
    ]
    with (
        control_plane(tmp_path) as plane,
        run_opa_server(opa_bin, tmp_path, paths=[builds.rego["r1"]], bundle=True, extra_args=opa_args) as opa,
    ):
        config = plane.agent_with_r1(tmp_path, builds, state, engine_opa=opa.url)
        done = run_agent("--once", "--config", str(config))
        assert done.returncode == 0, done.stderr
        body = spool_bodies(state)[0]
        assert body["engine"] == "opa"
        decision_id = body["decision"]["decision_id"]
        assert wait_for("OPA's decision log", lambda: opa_decision_ids(opa.log), 10) == [decision_id]
        [logged] = opa_decision_logs(opa.log)  # the same event, as OPA logs it: the same bundles
        named = {str(builds.rego["r1"]): {"revision": "r1"}}  # (a file bundle: named by its path)
        assert body["bundles"] == logged["bundles"] == named, (body, logged)
        device = plane.device()
        assert device is not None and device["decision_id"] == decision_id
        assert [h["decision_id"] for h in device["history"]] == [decision_id]
        assert device["decision"]["engine"] == "opa"
