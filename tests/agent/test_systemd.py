"""The systemd units in deploy/systemd: hardened, and accepted by systemd-analyze when it is present."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.agent.conftest import REPO

UNITS = REPO / "deploy" / "systemd"
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "StateDirectory": "pyagent",
    "ReadWritePaths": "/var/lib/pyagent /var/log/pyagent",
    "CapabilityBoundingSet": "",
    "RestrictSUIDSGID": "yes",
    "SystemCallFilter": "@system-service",
    "UMask": "0077",
    "User": "pyagent",
}


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name, encoding="utf-8")
    return parser


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("pyagent-agent.service", "agent run --config /etc/pyagent/agent.toml"),
        ("pyagent-agent-once.service", "agent run --once --config /etc/pyagent/agent.toml"),
    ],
)
def test_the_services_run_the_agent_hardened(name: str, command: str) -> None:
    service = unit(name)["Service"]
    assert service["ExecStart"].endswith(command)
    for key, value in HARDENING.items():
        assert service.get(key) == value, key
    assert "MemoryDenyWriteExecute" not in service  # the wasm JIT needs it off


def test_the_timer_runs_the_once_service_with_jitter() -> None:
    timer = unit("pyagent-agent-once.timer")["Timer"]
    assert timer["Unit"] == "pyagent-agent-once.service"
    assert timer["RandomizedDelaySec"] == "6min" and timer["Persistent"] == "yes"
    # Persistent= catches up only on a calendar schedule (systemd.timer(5)); monotonic ones ignore it
    assert timer["OnCalendar"] == "hourly"
    assert {key for key in timer if key.startswith("On")} == {"OnCalendar"}
    assert unit("pyagent-agent-once.service")["Service"]["SuccessExitStatus"] == "1"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    names = ["pyagent-agent.service", "pyagent-agent-once.service", "pyagent-agent-once.timer"]
    for name in names:  # the same units, with a command that exists on this machine
        text = (UNITS / name).read_text(encoding="utf-8").replace("/usr/local/bin/pyagent", "/bin/true")
        (tmp_path / name).write_text(text, encoding="utf-8")
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in names)],
        capture_output=True,
        text=True,
        env={"SYSTEMD_LOG_LEVEL": "warning", "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "pyagent" not in done.stderr, done.stderr
