"""The systemd units in deploy/systemd: hardened, accepted by systemd-analyze when it is present, and the
OPA unit's command run by the pinned opa with the unit's environment and the deploy example's config."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from bench.opa_throughput import OPA_UNIT, unit_environment
from tests.agent.conftest import REPO
from tests.helpers.opa_server import free_port, wait_healthy_unix
from tests.helpers.tls import make_ca

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
    assert service["ExecStart"] == f"/usr/local/bin/pyagent {command}"
    for key, value in HARDENING.items():
        assert service.get(key) == value, key
    assert "MemoryDenyWriteExecute" not in service  # the wasm JIT needs it off
    # started after the local OPA where it is installed: a first run at boot finds it listening
    assert unit(name)["Unit"]["After"] == "network-online.target pyagent-opa.service"


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
    names = [
        "pyagent-agent.service",
        "pyagent-agent-once.service",
        "pyagent-agent-once.timer",
        "pyagent-opa.service",
    ]
    for name in names:  # the same units, with a command that exists on this machine
        text = (UNITS / name).read_text(encoding="utf-8")
        text = text.replace("/usr/local/bin/pyagent", "/bin/true").replace("/usr/local/bin/opa", "/bin/true")
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


SOCKET = "/run/pyagent-opa/opa.sock"
OPA_COMMAND = (
    f"/usr/local/bin/opa run --server --addr unix://{SOCKET} --unix-socket-perm 600 --skip-version-check "
    "--config-file /etc/pyagent/config.yaml"
)


def test_the_opa_service_serves_its_user_only_hardened_with_its_collector_setting() -> None:
    service = unit("pyagent-opa.service")["Service"]
    assert service["ExecStart"] == OPA_COMMAND
    for key, value in HARDENING.items():
        if key not in ("StateDirectory", "ReadWritePaths"):
            assert service.get(key) == value, key
    assert service["MemoryDenyWriteExecute"] == "yes"  # OPA compiles nothing at run time
    # OPA persists bundles under the config's persistence_directory, its only writable place
    example = (UNITS / "config.yaml.example").read_text(encoding="utf-8")
    assert "persistence_directory: /var/lib/pyagent-opa " in example
    assert (service["StateDirectory"], service["ReadWritePaths"], service["WorkingDirectory"]) == (
        "pyagent-opa",
        "/var/lib/pyagent-opa",
        "/var/lib/pyagent-opa",
    )
    # the socket's directory: made at start, only the pyagent user may write into it
    assert (service["RuntimeDirectory"], service["RuntimeDirectoryMode"]) == ("pyagent-opa", "0750")
    assert f'# url = "unix://{SOCKET}"' in (UNITS / "agent.toml.example").read_text(encoding="utf-8")
    assert service["Environment"] == "GOGC=400"
    assert unit_environment(OPA_UNIT) == {"GOGC": "400"}  # what `make bench` starts its OPA with


def test_the_pinned_opa_runs_the_unit_command_with_the_example_config(opa_bin: str, tmp_path: Path) -> None:
    """The unit's command line and the deploy example as the pinned OPA reads them, with the example's
    files, its socket and its server moved here (the server to a closed loopback port, so that OPA's
    first bundle download fails at once, whatever this machine's DNS). Not run here: the unit's
    sandbox (systemd-analyze checks it)."""
    closed = free_port()
    token = tmp_path / "agent.token"
    token.write_text("token-for-the-unit-test\n", encoding="utf-8")
    ca, _ = make_ca(tmp_path)
    example = (UNITS / "config.yaml.example").read_text(encoding="utf-8")
    moved = {
        "/var/lib/pyagent-opa": str(tmp_path / "persist"),
        "/etc/pyagent/agent.token": str(token),
        "/etc/pyagent/pyagent-ca.pem": str(ca),
        "https://pyagent.internal:8282": f"https://127.0.0.1:{closed}",
    }
    for old, new in moved.items():
        assert old in example, old
        example = example.replace(old, new)
    config = tmp_path / "config.yaml"
    config.write_text(example, encoding="utf-8")
    sock = tmp_path / "opa.sock"
    command = shlex.split(unit("pyagent-opa.service")["Service"]["ExecStart"])
    command = [
        opa_bin if word == "/usr/local/bin/opa"
        else f"unix://{sock}" if word == f"unix://{SOCKET}"
        else str(config) if word == "/etc/pyagent/config.yaml"
        else word
        for word in command
    ]  # fmt: skip
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **unit_environment(OPA_UNIT)}
    log = tmp_path / "opa.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy_unix(str(sock), process, log, deadline=time.monotonic() + 20)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600  # --unix-socket-perm
        deadline = time.monotonic() + 10
        refused = f"127.0.0.1:{closed}: connect: connection refused"
        while "Bundle load failed" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        text = log.read_text()
        failed = [line for line in text.splitlines() if "Bundle load failed" in line and refused in line]
        assert failed, text[-2000:]
        assert process.poll() is None  # OPA keeps serving, and retries
    finally:
        process.terminate()
        process.wait(timeout=10)
