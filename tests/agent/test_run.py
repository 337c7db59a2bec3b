"""`pyagent agent run` on this machine: one run recorded, the status, the schedule and a clean stop."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pyagent.agent.chain import ChainKey
from pyagent.agent.runner import next_delay
from pyagent.agent.store import Spool
from tests.agent.conftest import REPO, pyagent_env, run_pyagent
from tests.helpers.opa_server import POLICY_DIRS, RunningOpa


def test_run_once_on_this_machine_records_the_decision(
    tmp_path: Path, config_file: Callable[..., Path], policy_bundle: Path
) -> None:
    config = config_file(log_path=str(tmp_path / "agent.jsonl"))
    done = run_pyagent("agent", "run", "--once", "--config", str(config))
    recorded = json.loads(done.stdout)
    # the shipped data bans nothing on Linux: this machine is compliant
    assert (done.returncode, recorded["seq"], recorded["outcome"], recorded["exit_code"]) == (
        0, 1, "compliant", 0
    ), done.stderr  # fmt: skip
    with Spool.open(tmp_path / "spool.sqlite", key=ChainKey(), readonly=True) as spool:
        body = json.loads(spool.records()[0].body)
    assert body["id"] == recorded["id"] and body["prev_hash"] == "0" * 64
    assert body["device_id"] == "laptop-17" and body["organization"] == "eu-commission"
    assert len(body["report_sha256"]) == 64 and body["apps"] == len(body["input"]["report"]["apps"]) > 0
    assert (body["decision"]["allow"], body["decision"]["violations"]) == (True, [])
    assert body["engine"] == "embedded" and body["policy_revision"] == body["decision"]["policy_revision"]
    assert body["decision"]["device_id"] == "laptop-17" and body["error"] is None
    # no [bundles]: the event names the bundle that decided, by the policy's name and its revision
    with tarfile.open(policy_bundle) as bundle:
        manifest = json.loads(bundle.extractfile("/.manifest").read())  # type: ignore[union-attr]
    assert body["bundles"] == {"pyagent": {"revision": manifest["revision"]}}
    for key in ("started_at", "collected_at", "evaluated_at", "finished_at", "recorded_at"):
        assert body[key].endswith("Z"), key
    log_lines = (tmp_path / "agent.jsonl").read_text().splitlines()
    assert json.loads(log_lines[-1])["id"] == recorded["id"]

    status = run_pyagent("agent", "status", "--config", str(config), "--format", "json")
    assert status.returncode == 0
    document = json.loads(status.stdout)
    assert document["last_run"]["outcome"] == recorded["outcome"]
    assert document["last_run"]["device_id"] == "laptop-17"
    assert document["head"] == {"seq": 1, "hash": recorded["hash"], "id": recorded["id"]}
    assert (document["records"], document["pending"], document["dropped"]) == (1, 1, 0)
    text = run_pyagent("agent", "status", "--config", str(config))
    assert text.returncode == 0 and f"log head: seq 1 {recorded['hash']}" in text.stderr
    assert run_pyagent("log", "verify", "--config", str(config)).returncode == 0


def test_run_once_with_a_banned_package_installed_is_non_compliant(
    tmp_path: Path, config_file: Callable[..., Path]
) -> None:
    """A bundle whose data bans ``dpkg`` (on every Debian machine) on the Commission's corporate Linux
    devices: the run is non-compliant, exit 1, with that rule's violation recorded."""
    overlay = tmp_path / "overlay" / "pyagent"
    for path, document in (
        ("bans/test-dpkg", {"title": "dpkg", "reason": "a test ban", "apps": {"linux": ["dpkg"]}}),
        ("organizations/eu-commission/rules/test-dpkg",
         {"ban": "test-dpkg", "scopes": ["corporate"], "effective_from": "2023-03-15T00:00:00Z"}),
    ):  # fmt: skip
        (overlay / path).mkdir(parents=True)
        (overlay / path / "data.json").write_text(json.dumps(document), encoding="utf-8")
    bundle = tmp_path / "banned.tar.gz"
    built = run_pyagent("policy", "bundle", *map(str, POLICY_DIRS), str(overlay.parent), "-o", str(bundle))
    assert built.returncode == 0, built.stderr
    config = config_file()
    done = subprocess.run(
        [sys.executable, "-m", "pyagent", "agent", "run", "--once", "--config", str(config)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**pyagent_env(), "PYAGENT_BUNDLE": str(bundle)}, check=False,
    )  # fmt: skip
    recorded = json.loads(done.stdout)
    assert (done.returncode, recorded["outcome"], recorded["exit_code"]) == (1, "non-compliant", 1), (
        done.stderr
    )
    with Spool.open(tmp_path / "spool.sqlite", key=ChainKey(), readonly=True) as spool:
        body = json.loads(spool.records()[0].body)
    violations = body["decision"]["violations"]
    assert body["decision"]["allow"] is False
    assert [(v["rule"], v["ban"], v["app_id"], v["scope"]) for v in violations] == [
        ("eu-commission/test-dpkg", "test-dpkg", "dpkg", "corporate")
    ]


def test_the_opa_section_of_the_config_selects_an_opa_server(
    config_file: Callable[..., Path], opa_server: RunningOpa
) -> None:
    config = config_file(opa={"url": opa_server.url})
    done = run_pyagent("agent", "run", "--once", "--config", str(config))
    assert (done.returncode, json.loads(done.stdout)["outcome"]) == (0, "compliant"), done.stderr
    status = json.loads(run_pyagent("agent", "status", "--config", str(config), "--format", "json").stdout)
    assert status["last_run"]["engine"] == "opa" and status["last_run"]["exit_code"] == done.returncode


def test_a_failed_run_is_recorded_too(config_file: Callable[..., Path], policy_bundle: Path) -> None:
    config = config_file(device={"id": "laptop-17"})  # no ownership, no enrolment
    done = run_pyagent("agent", "run", "--once", "--config", str(config))
    assert done.returncode == 2
    recorded = json.loads(done.stdout)
    assert recorded["outcome"] == "invalid"
    status = json.loads(run_pyagent("agent", "status", "--config", str(config), "--format", "json").stdout)
    assert "missing device fact" in status["last_run"]["error"]


def test_no_decision_is_exit_3_and_recorded(
    tmp_path: Path, config_file: Callable[..., Path], policy_bundle: Path
) -> None:
    config = config_file()
    done = run_pyagent("agent", "run", "--once", "--config", str(config), "--bundle", str(tmp_path / "none"))
    assert done.returncode == 3
    assert json.loads(done.stdout)["outcome"] == "no-decision"


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ({"intervall": 5}, "unknown key agent.intervall"),
        ({"jitter": 1.5}, "agent.jitter"),
        ({"max_records": 0}, "agent.max_records"),
        ({"collector_url": "ftp://x"}, "not an http:// or https:// URL"),
    ],
)
def test_config_errors_are_one_line_exit_2(
    config_file: Callable[..., Path], agent: dict[str, object], message: str
) -> None:
    done = run_pyagent("agent", "run", "--once", "--config", str(config_file(**agent)))
    assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1


def test_jitter_stays_within_ten_percent() -> None:
    rng = random.Random(7)
    delays = [next_delay(600, 0.1, rng) for _ in range(2000)]
    assert 540 <= min(delays) < 550 and 650 < max(delays) <= 660
    assert next_delay(0, 0.1) == 0


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])  # (HUP killed it: exit 129, nothing said)
def test_sigterm_ends_the_sleep_and_the_agent_exits_0(
    config_file: Callable[..., Path], policy_bundle: Path, stop: signal.Signals
) -> None:
    config = config_file(interval=3600)
    process = subprocess.Popen(
        [sys.executable, "-m", "pyagent", "agent", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=pyagent_env(),
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())  # the first run is recorded; now it sleeps an hour
        assert first["seq"] == 1
        time.sleep(0.3)
        started = time.monotonic()
        os.kill(process.pid, stop)
        code = process.wait(timeout=10)
        assert code == 0
        assert time.monotonic() - started < 5
        assert process.stderr is not None and f"stopped by {stop.name}" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_keyed_log_from_the_config(
    tmp_path: Path, config_file: Callable[..., Path], policy_bundle: Path
) -> None:
    key = tmp_path / "log.key"
    key.write_text("0123456789abcdef" * 4 + "\n")
    key.chmod(0o600)  # a secret open to every user is said on stderr
    config = config_file(hmac_key_file=str(key))
    for _ in range(2):
        assert run_pyagent("agent", "run", "--once", "--config", str(config)).returncode == 0
    verified = run_pyagent("log", "verify", "--config", str(config))
    assert verified.returncode == 0 and "hmac-sha256" in verified.stderr
    key.write_text("another key, another chain: refused" + "\n")
    done = run_pyagent("agent", "run", "--once", "--config", str(config))
    assert done.returncode == 2 and "the decision log was chained with hmac-sha256" in done.stderr
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--opa-url", "junk"],
         "pyagent: error: --opa-url: 'junk' is not an http(s)://host[:port] or unix:///path URL\n"),
        (["--engine", "opa"], "pyagent: error: --engine opa needs --opa-url URL (or env PYAGENT_OPA_URL)\n"),
        (["--engine", "embedded", "--opa-token", "abc"],
         "pyagent: error: --opa-token is for an OPA server (--engine opa); the embedded engine decides\n"),
    ],
)  # fmt: skip
def test_a_flag_every_run_would_fail_on_is_refused_before_the_first(
    tmp_path: Path, config_file: Callable[..., Path], flags: list[str], message: str
) -> None:
    """It was a run recorded as invalid (a JSON line on stdout, a record in the spool), and as a
    service one more at every interval."""
    config = config_file()
    done = run_pyagent("agent", "run", "--once", "--config", str(config), *flags)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", message)
    assert not (tmp_path / "spool.sqlite").exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--interval", "5"], "--interval"), (["--interval", "5", "--jitter", "0.2"], "--interval, --jitter")],
)
def test_a_running_agent_s_flags_with_once_are_a_usage_error(
    tmp_path: Path, config_file: Callable[..., Path], flags: list[str], named: str
) -> None:
    """``--once --interval 5`` ran once, exit 0: the interval was dropped unsaid."""
    done = run_pyagent("agent", "run", "--once", "--config", str(config_file()), *flags)
    assert (done.returncode, done.stdout, done.stderr) == (
        2, "", f"pyagent: error: {named}: a running agent's; --once runs once\n"
    )  # fmt: skip
    assert not (tmp_path / "spool.sqlite").exists()


def test_status_of_a_spool_named_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    """A typo in --spool said "none yet", exit 0."""
    typo = tmp_path / "spoool.sqlite"
    done = run_pyagent("agent", "status", "--spool", str(typo))
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"pyagent: error: --spool {typo}: no such spool\n",
    )
    assert not typo.exists()
