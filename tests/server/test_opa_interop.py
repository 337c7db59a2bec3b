"""A real pinned ``opa run --server -c config.yaml`` against a real ``pyagent server run``: OPA pulls
``bundles/pyagent`` (long polling), and its decision logs and status land in the server, so a decision
that OPA made for a device is that device's current state, with OPA's ``decision_id``."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from pyagent.server.auth import new_token
from pyagent.server.publish import publish
from pyagent.server.store import open_store
from pyagent.server.store.schema import decisions, devices, instances
from pyagent.server.store.sql import SqlStore
from tests.helpers.opa_server import RunningOpa, free_port
from tests.helpers.policy_data import shipped_revision
from tests.helpers.pyagent_server import RunningServer, add_token, run_server
from tests.helpers.services import stop_process
from tests.server.conftest import example_report

DEVICE = "fr-brussels-0042"
REV2 = "rev-2"


#: An OPA stamps each event with when it decided; these tests ask about now, so that the devices'
#: decisions are current (a decision about a past instant goes into that instant's history).
def now_at(later: timedelta = timedelta(0)) -> str:
    """Now (plus ``later``), to the second, as the policy input's ``at``."""
    return (datetime.now(UTC).replace(microsecond=0) + later).isoformat().replace("+00:00", "Z")


T = TypeVar("T")


def http(url: str, *, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    """(status, JSON body or None) of a GET, or a POST of ``body`` as JSON."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, log: Path | None = None) -> T:
    """``probe()``'s first truthy value, polled until ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    tail = log.read_text()[-3000:] if log else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


def build(workdir: Path, revision: str) -> Path:
    """The repo's policies as a Rego bundle, built as a platform engineer does."""
    out = workdir / f"rego-{revision}.tar.gz"
    subprocess.run([sys.executable, "-m", "pyagent", "policy", "bundle", "--target", "rego",
                    "--revision", revision, "-o", str(out)], check=True, capture_output=True)  # fmt: skip
    return out


@dataclass
class Opa(RunningOpa):
    started: float  # time.monotonic() when the process was spawned


@contextlib.contextmanager
def control_plane(tmp_path: Path) -> Iterator[tuple[RunningServer, dict[str, str]]]:
    """The server with bundle ``pyagent`` at rev-1 published, and a token per role."""
    db = f"sqlite:///{tmp_path / 'server.db'}"
    subprocess.run([sys.executable, "-m", "pyagent", "server", "publish", "--name", "pyagent",
                    str(build(tmp_path, "rev-1")), "--db", db], check=True, capture_output=True)  # fmt: skip
    tokens = {role: add_token(db, f"{role}-token", role) for role in ("agent", "reader")}
    with run_server(tmp_path, db) as server:
        yield server, tokens


@contextlib.contextmanager
def run_opa(opa: str, workdir: Path, server: str, token: str, *, min_delay: int = 20) -> Iterator[Opa]:
    """``opa run --server -c config.yaml``: no policy of its own, everything from ``server``. The bundle
    polling delays are long, so a bundle that arrives sooner came through a long poll."""
    token_file = workdir / "opa.token"
    token_file.write_text(token + "\n")
    config = {
        "services": {"pyagent": {"url": server, "credentials": {"bearer": {"token_path": str(token_file)}}}},
        "bundles": {"pyagent": {"service": "pyagent", "resource": "bundles/pyagent", "polling": {
            "min_delay_seconds": min_delay, "max_delay_seconds": min_delay + 10,
            "long_polling_timeout_seconds": 10}}},
        "decision_logs": {"service": "pyagent",
                          "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 1}},
        "status": {"service": "pyagent"},
        "labels": {"fleet": "opa-interop"},
    }  # fmt: skip
    (workdir / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log = workdir / f"opa-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [opa, "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "info",
             "--shutdown-grace-period", "2", "-c", str(workdir / "config.yaml")],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    started, url = time.monotonic(), f"http://127.0.0.1:{port}"
    try:
        wait_for("opa /health", lambda: process.poll() is None and http(f"{url}/health")[0] == 200, 20, log)
        yield Opa(url, process, log, started)
    finally:
        stop_process(process, grace=10)


@contextlib.contextmanager
def interop(opa_bin: str, tmp_path: Path) -> Iterator[tuple[RunningServer, dict[str, str], Opa]]:
    """The server, its tokens, and an OPA that it manages (with the agent token)."""
    with (
        control_plane(tmp_path) as (server, tokens),
        run_opa(opa_bin, tmp_path, server.url, tokens["agent"]) as opa,
    ):
        yield server, tokens, opa


def decide(opa_url: str, *, at: str | None = None, provenance: bool = False) -> dict[str, Any]:
    query = "?provenance=true" if provenance else ""
    status, body = http(f"{opa_url}/v1/data/pyagent/decision{query}",
                        body={"input": {"at": at or now_at(), "report": example_report()}})  # fmt: skip
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def device_state(server: RunningServer, reader: str) -> dict[str, Any] | None:
    """``GET /api/v1/devices/{DEVICE}`` as a reader: the device's state, or None before it has one."""
    status, body = http(f"{server.url}/api/v1/devices/{DEVICE}", token=reader)
    assert status in (200, 404), (status, body)
    return body if status == 200 else None


def instance_rows(db: str) -> dict[str, dict[str, Any]]:
    """The ``instances`` table (newest status per sender), JSON columns decoded."""
    store = open_store(db)
    try:
        assert isinstance(store, SqlStore)
        with store.engine.connect() as conn:
            rows = conn.execute(select(instances)).mappings().all()
    finally:
        store.close()
    keys = ("labels", "bundles", "errors", "plugins")
    return {r["instance_id"]: {k: json.loads(r[k]) for k in keys} for r in rows}


def active_revision(db: str, instance: str) -> str | None:
    row = instance_rows(db).get(instance)
    return row["bundles"].get("pyagent", {}).get("active_revision") if row else None


def opa_instance_id(opa_url: str) -> str:
    status, body = http(f"{opa_url}/v1/config")
    assert status == 200, body
    labels = body["result"]["labels"]
    assert labels["fleet"] == "opa-interop"
    return str(labels["id"])


def test_opa_pulls_the_bundle_and_its_decision_is_the_devices_current_state(
    opa_bin: str, tmp_path: Path
) -> None:
    with interop(opa_bin, tmp_path) as (server, tokens, opa):
        wait_for("OPA to activate the bundle", lambda: http(f"{opa.url}/health?bundles=true")[0] == 200, 20)
        activated = time.monotonic() - opa.started
        # a stray query on the decision path (no report): OPA logs it too, and the server must not
        # refuse it, or OPA resends that batch forever and the device's decision never lands
        at = now_at()
        stray_status, stray = http(f"{opa.url}/v1/data/pyagent/decision", body={"input": {"at": at}})
        codes = [e["code"] for e in stray["result"]["errors"]]
        assert (stray_status, codes) == (200, ["missing_organization"])
        decision = decide(opa.url, at=at)
        result = decision["result"]
        assert result["allow"] is False
        assert result["device_id"] == DEVICE
        assert result["organization"] == "eu-commission"
        assert [(v["rule"], v["ban"], v["app_id"]) for v in result["violations"]] == [
            ("eu-commission/tiktok", "tiktok", "com.zhiliaoapp.musically")
        ]
        assert result["errors"] == []
        decided = time.monotonic()
        reader = tokens["reader"]
        device = wait_for(
            "the decision in the device's state", lambda: device_state(server, reader), 20, server.log
        )
        landed = time.monotonic() - decided
        instance = opa_instance_id(opa.url)  # OPA 1.22 sets labels.id to its own instance id (a UUID)
        assert device["decision_id"] == decision["decision_id"]
        assert (device["allow"], device["compliant"]) == (False, False)
        assert device["sender"] == instance
        assert device["bundles"] == {"pyagent": {"revision": "rev-1"}}
        assert device["decided_at"] == at
        assert device["decision"] == result  # stored verbatim
        assert (device["organization"], device["platform"]) == ("eu-commission", "android")
        assert device["status"] is None  # status is per sender: this OPA, not the device
        keys = ("decision_id", "decided_at", "allow", "sender", "bundles")
        assert [{k: h[k] for k in keys} for h in device["history"]] == [
            {"decision_id": decision["decision_id"], "decided_at": at, "allow": False, "sender": instance,
             "bundles": {"pyagent": {"revision": "rev-1"}}}
        ]  # fmt: skip
        wait_for("OPA's status", lambda: active_revision(server.db, instance) == "rev-1", 10, server.log)
        row = instance_rows(server.db)[instance]
        assert row["labels"] == {"id": instance, "version": "1.22.4", "fleet": "opa-interop"}
        assert row["errors"] == []
        assert row["plugins"]["bundle"] == {"state": "OK"}
        assert row["bundles"]["pyagent"]["type"] == "snapshot"
        assert list(instance_rows(server.db)) == [instance]
        print(f"bundle active {activated:.2f} s after opa was spawned; decision stored {landed:.2f} s after")


def test_a_published_revision_reaches_a_long_polling_opa_within_seconds(opa_bin: str, tmp_path: Path) -> None:
    with interop(opa_bin, tmp_path) as (server, tokens, opa):
        wait_for("OPA to activate rev-1", lambda: http(f"{opa.url}/health?bundles=true")[0] == 200, 20)
        instance = opa_instance_id(opa.url)
        wait_for("OPA's status with rev-1", lambda: active_revision(server.db, instance) == "rev-1", 10)
        assert decide(opa.url, provenance=True)["provenance"]["bundles"] == {"pyagent": {"revision": "rev-1"}}
        time.sleep(1)  # OPA is now inside a long poll (its plain polling would wait 20-30 s)
        raw = build(tmp_path, REV2).read_bytes()
        store = open_store(server.db)  # not the server's process: it sees the new revision in the store
        try:
            published = time.monotonic()
            publish(store, "pyagent", [("rego.tar.gz", raw)], verification=None, published_by="test")
        finally:
            store.close()
        wait_for(
            "OPA to activate rev-2",
            lambda: decide(opa.url, provenance=True)["provenance"]["bundles"]["pyagent"]["revision"] == REV2,
            5, server.log,
        )  # fmt: skip
        in_opa = time.monotonic() - published
        wait_for("OPA's status with rev-2", lambda: active_revision(server.db, instance) == REV2, 5)
        in_status = time.monotonic() - published
        assert in_opa < 5
        # a later decision (at an equal instant, the device keeps the greater decision_id, not the last)
        later = decide(opa.url, at=now_at(timedelta(minutes=1)))
        later = later["decision_id"]
        reader = tokens["reader"]
        device = wait_for(
            "the decision under rev-2 in the device's state",
            lambda: (d := device_state(server, reader)) and d["decision_id"] == later and d,
            10, server.log,
        )  # fmt: skip
        assert device["bundles"] == {"pyagent": {"revision": REV2}}
        print(f"rev-2 active in OPA {in_opa:.2f} s after publish, in its status {in_status:.2f} s")


@pytest.mark.parametrize(("role", "code"), [("reader", 403), (None, 401)], ids=["reader", "unknown-token"])
def test_an_opa_without_an_agent_token_gets_nothing_and_stores_nothing(
    opa_bin: str, tmp_path: Path, role: str | None, code: int
) -> None:
    with control_plane(tmp_path) as (server, tokens):
        token = tokens[role] if role else new_token()
        assert http(f"{server.url}/bundles/pyagent", token=token)[0] == code
        with run_opa(opa_bin, tmp_path, server.url, token, min_delay=1) as opa:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:  # it retries, and keeps failing
                assert http(f"{opa.url}/health?bundles=true")[0] != 200
                time.sleep(0.1)
            decision = decide(opa.url)
            assert "result" not in decision  # no policy: undefined
            time.sleep(2.5)  # a decision-log upload (every second) and status updates were refused
            log = opa.log.read_text()
            assert f"server replied with HTTP {code}" in log, log[-2000:]
        store = open_store(server.db)
        try:
            assert isinstance(store, SqlStore)
            with store.engine.connect() as conn:
                for table in (instances, decisions, devices):
                    assert conn.execute(select(table)).all() == [], table.name
        finally:
            store.close()


def test_a_query_of_another_path_does_not_block_later_decisions(opa_bin: str, tmp_path: Path) -> None:
    with interop(opa_bin, tmp_path) as (server, tokens, opa):
        wait_for("OPA to activate the bundle", lambda: http(f"{opa.url}/health?bundles=true")[0] == 200, 20)
        assert http(f"{opa.url}/v1/data/pyagent/revision")[1]["result"] == shipped_revision()  # logged by OPA
        time.sleep(2)  # its own upload: acknowledged and ignored (another path), never a 400 to retry forever
        decision = decide(opa.url)
        reader = tokens["reader"]
        device = wait_for(
            "the decision in the device's state", lambda: device_state(server, reader), 8, server.log
        )
        assert device["decision_id"] == decision["decision_id"]


def test_a_crafted_input_does_not_block_later_decisions(opa_bin: str, tmp_path: Path) -> None:
    """A client of the OPA asks about a report nested 2,000 levels deep (Go's JSON takes it; no parser
    here takes the batch whole), with a NUL in its organisation and an integer past 64 bits: OPA logs
    it, and resends any batch the server refuses, forever. It is acknowledged; the next decision lands."""
    with interop(opa_bin, tmp_path) as (server, tokens, opa):
        wait_for(
            "OPA to activate the bundle", lambda: http(f"{opa.url}/v1/data/pyagent/decision")[0] == 200, 20
        )
        crafted = example_report()
        crafted["device"]["id"] = "crafted-device"
        crafted["device"]["organization"] = "eu\0commission"
        crafted["extra"] = {"big": 2**70, "nested": "HOLE"}
        body = json.dumps({"input": {"at": now_at(), "report": crafted}})
        body = body.replace('"HOLE"', "[" * 2000 + "1" + "]" * 2000)
        request = urllib.request.Request(
            f"{opa.url}/v1/data/pyagent/decision", data=body.encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        time.sleep(2)  # OPA's upload of it: acknowledged (the event ignored), never refused to be resent
        decision = decide(opa.url)
        device = wait_for(
            "the next decision in the device's state",
            lambda: device_state(server, tokens["reader"]),
            8,
            server.log,
        )
        assert device["decision_id"] == decision["decision_id"]
