"""Shared pieces of the agent tests: a config file on disk, the real CLI as a subprocess, a spool, and
the record a decided run gives."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyagent.agent.chain import ChainKey
from pyagent.agent.store import Spool

REPO = Path(__file__).resolve().parents[2]

DEVICE = {
    "id": "laptop-17",
    "organization": "eu-commission",
    "ownership": "corporate",
    "mdm_enrolled": True,
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(
    path: Path, *, device: dict[str, Any] | None = None, opa: dict[str, Any] | None = None, **agent: Any
) -> Path:
    """A TOML agent config with [device], [agent] and (when given) [opa] sections."""
    lines = ["[device]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in (DEVICE if device is None else device).items()]
    lines.append("[agent]")
    lines += [f"{k} = {toml_value(v)}" for k, v in agent.items()]
    if opa is not None:
        lines.append("[opa]")
        lines += [f"{k} = {toml_value(v)}" for k, v in opa.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[..., Path]:
    """``config_file(**agent_keys)``: a config with this test's spool (``tmp_path/spool.sqlite``)."""

    def make(
        *, device: dict[str, Any] | None = None, opa: dict[str, Any] | None = None, **agent: Any
    ) -> Path:
        agent.setdefault("spool_path", str(tmp_path / "spool.sqlite"))
        agent.setdefault("interval", 0)
        return write_config(tmp_path / "agent.toml", device=device, opa=opa, **agent)

    return make


def pyagent_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYAGENT_OPA_URL", "PYAGENT_OPA_TOKEN", "PYAGENT_OPA_CA", "PYAGENT_CONFIG", "PYAGENT_DEBUG"):
        env.pop(name, None)
    env["PYTHONPATH"] = str(REPO)
    return env


def run_pyagent(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real CLI in a separate process (``python -m pyagent``)."""
    return subprocess.run(
        [sys.executable, "-m", "pyagent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=pyagent_env(),
        cwd=REPO,
        check=False,
    )


def synthetic(i: int) -> dict[str, Any]:
    """Content of a result, as a run would give it (enough for the chain and the shipping tests)."""
    return {
        "outcome": "non-compliant" if i % 3 == 0 else "compliant",
        "exit_code": 1 if i % 3 == 0 else 0,
        "device_id": "laptop-17",
        "organization": "eu-commission",
        "allow": i % 3 != 0,
        "report_sha256": f"{i:064x}",
        "decision": None,
        "error": None,
    }


def fill(path: Path, count: int, *, key: ChainKey | None = None, max_records: int = 1000) -> list[str]:
    """Append ``count`` synthetic results to the spool at ``path``; returns their ids."""
    ids = []
    with Spool.open(path, key=key or ChainKey()) as spool:
        for i in range(count):
            ids.append(spool.append(synthetic(i), max_records=max_records).id)
    return ids


def decided(i: int) -> dict[str, Any]:
    """A record's content as a decided run gives it."""
    report = {
        "schema_version": 1,
        "collected_at": "2023-03-16T09:30:00Z",
        "apps": [],
        "device": {
            "id": "laptop-17",
            "platform": "linux",
            "ownership": "corporate",
            "mdm": {"enrolled": True},
        },
    }
    at = f"2023-03-16T09:30:{i % 60:02d}Z"
    decision = {
        "device_id": "laptop-17",
        "allow": True,
        "violations": [],
        "decision_id": f"d-{i}",
        "evaluated_at": at,
        "policy_revision": "x",
        "engine": "embedded",
    }
    return {
        "outcome": "compliant",
        "exit_code": 0,
        "device_id": "laptop-17",
        "decision": decision,
        "input": {"at": at, "report": report},
        "bundles": {"pyagent": {"revision": "r1"}},
        "metrics": {"timer_pyagent_decide_ns": 1000 + i},
        "error": None,
    }
