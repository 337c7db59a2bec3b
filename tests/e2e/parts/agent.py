"""The loop's agent: its configuration in OPA's keys, the long-running process, and its state
(spool records, bundle status, partial downloads) read while it runs."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyagent.agent.chain import ChainKey
from pyagent.agent.store import RawRecord, Spool
from tests.agent.conftest import DEVICE, REPO, pyagent_env
from tests.e2e.parts.evidence import Evidence
from tests.e2e.parts.names import BUNDLE, KEYID, SLOW_POLLING
from tests.e2e.parts.plane import Plane, opa_tables
from tests.e2e.parts.signed import Signed

STOP_TIMEOUT = 20


def write_agent_config(
    path: Path,
    plane: Plane,
    signed: Signed,
    state: Path,
    *,
    interval: float = 1,
    bundles_from: tuple[str, str, dict[str, Any]] | None = None,
    polling: Mapping[str, float] = SLOW_POLLING,
) -> Path:
    """An agent config in OPA's keys (a ``config.yaml``; JSON is YAML): bundles from the server's wasm
    build, or from ``bundles_from`` (service name, resource, service table); logs and status to the
    server."""
    document = opa_tables(plane, signed)
    service, resource = BUNDLE, f"bundles/{BUNDLE}/wasm"
    if bundles_from is not None:
        service, resource, table = bundles_from
        document["services"][service] = table
    document |= {
        "device": DEVICE,
        "agent": {"state_dir": str(state), "interval": interval, "jitter": 0.1},
        "bundles": {
            BUNDLE: {
                "service": service,
                "resource": resource,
                "persist": True,
                "polling": dict(polling),
                "signing": {"keyid": KEYID},
            }
        },
    }
    path.write_text(json.dumps(document, indent=2))
    return path


@dataclass
class Agent:
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """SIGTERM: the run in progress is finished and recorded, then it exits 0. An agent that is still
        there after ``STOP_TIMEOUT`` s gets SIGABRT, so that faulthandler writes every thread's stack to
        its log, which the failure shows."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            raise AssertionError(
                f"the agent was still running {STOP_TIMEOUT} s after SIGTERM; its log, with its threads'"
                f" stacks:\n{self.log.read_text(errors='replace')[-8000:]}"
            ) from None
        assert code == 0, f"the agent exited {code} after SIGTERM:\n{self.log.read_text()[-3000:]}"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@contextlib.contextmanager
def running_agent(config: Path, workdir: Path, name: str, evidence: Evidence) -> Iterator[Agent]:
    """``pyagent agent run --config CONFIG`` (long-running) in its own process; killed if still running."""
    log = evidence.add(f"agent {name}", workdir / f"agent-{name}.log")
    with log.open("wb") as errors, (workdir / f"agent-{name}.out").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pyagent", "agent", "run", "--config", str(config)],
            stdout=out,
            stderr=errors,
            env={**pyagent_env(), "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"},
            cwd=REPO,
        )
    try:
        yield Agent(process, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def records(state: Path) -> list[RawRecord]:
    """The agent's spool, read-only (the agent may be writing: SQLite WAL)."""
    path = state / "spool.sqlite"
    if not path.is_file():
        return []
    with Spool.open(path, key=ChainKey(), readonly=True) as spool:
        return spool.records()


def body(row: RawRecord) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(row.body)
    return document


def revision_of(row: RawRecord) -> str | None:
    """The revision of the bundle the record's decision was made with."""
    revision = body(row).get("bundles", {}).get(BUNDLE, {}).get("revision")
    return str(revision) if revision is not None else None


def decision_id(row: RawRecord) -> str:
    decision = body(row).get("decision")
    assert isinstance(decision, dict), f"record seq {row.seq} has no decision: {row.body[:500]}"
    return str(decision["decision_id"])


def bundle_status(state: Path) -> dict[str, Any]:
    path = state / "bundles" / BUNDLE / "status.json"
    document: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return document


def downloads(state: Path) -> list[Path]:
    return sorted((state / "bundles" / BUNDLE).glob(".download-*"))


def reported(device: dict[str, Any] | None) -> dict[str, Any]:
    """The agent's status as the server's device view shows it (``{}`` before there is one)."""
    status = (device or {}).get("status") or {}
    bundle: dict[str, Any] = status.get("bundles", {}).get(BUNDLE, {})
    return {"active_revision": bundle.get("active_revision"), "errors": status.get("errors", [])}
