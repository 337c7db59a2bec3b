"""The wheel installed outside the checkout works as a non-root user: ``check`` with the packaged policy,
``policy docs``, the opa look-up, ``check --policy``, and ``agent run --once`` against a real server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyagent.policy.docs import bundle_policy_data, render_markdown
from pyagent.server.publish import publish
from pyagent.server.store import open_store
from tests.helpers.pyagent_server import add_token, run_server
from tests.packaging.installed import REPO, Installed, install

EXAMPLE = REPO / "examples" / "reports" / "eu-commission-personal-enrolled-tiktok.json"
AT = "2023-03-16T09:30:00Z"
REVISION = re.search(
    r'^revision:\s*"(.*)"', (REPO / "policies" / "data" / "pyagent" / "data.yaml").read_text(), re.MULTILINE
).group(1)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def installed(opa_bin: str) -> Iterator[Installed]:
    started = time.monotonic()
    done = install(opa_bin)
    done.timings["total install"] = round(time.monotonic() - started, 1)
    print(f"\npackaging: {done.timings}")
    yield done
    shutil.rmtree(done.base, ignore_errors=True)


def test_the_install_is_outside_the_checkout(installed: Installed) -> None:
    python = str(installed.venv / "bin" / "python")
    where = installed.run_program([python, "-c", "import pyagent; print(pyagent.__file__)"])
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(installed.venv / "lib")), where.stdout
    assert str(REPO) not in (installed.venv / "pyvenv.cfg").read_text()
    share = Path(where.stdout.strip()).parent / "share"
    assert json.loads((share / "build.json").read_text())["policy_revision"] == REVISION
    assert (share / "policies" / "rego" / "pyagent" / "decision" / "decision.rego").is_file()
    for unit in ("pyagent-agent.service", "pyagent-agent-once.service"):  # the installed entry point
        text = (share / "docs" / "deploy" / "systemd" / unit).read_text()
        assert "ExecStart=/usr/local/bin/pyagent agent run " in text and "PYAGENT_BUNDLE" not in text


def test_check_an_example_with_the_packaged_policy(installed: Installed) -> None:
    report = installed.give(EXAMPLE, EXAMPLE.name)
    done = installed.run("check", str(report), "--at", AT)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == f"NON-COMPLIANT: device fr-brussels-0042, organisation eu-commission, evaluated {AT}"
    assert lines[1] == "violations (1):"
    assert lines[2] == "  eu-commission/tiktok: TikTok (com.zhiliaoapp.musically), scope personal-enrolled"
    assert lines[-1].startswith(f"policy revision {REVISION}, engine embedded, decision ")
    assert done.stdout == ""


def test_policy_docs_needs_no_opa(installed: Installed, policy_bundle: Path) -> None:
    done = installed.run("policy", "docs")
    assert done.returncode == 0, done.stderr
    assert done.stdout == render_markdown(bundle_policy_data(policy_bundle))
    assert f"# App bans (policy revision {REVISION})" in done.stdout


def test_policy_commands_say_how_to_get_opa(installed: Installed, opa_bin: str, tmp_path: Path) -> None:
    for command in ("test", "lint", "bundle"):
        done = installed.run("policy", command)
        assert done.returncode == 2, (command, done.stderr)
        note, error = done.stderr.splitlines()  # which policy, said first: none was given, none is here
        assert note.startswith("pyagent: note: no policy here; working on the shipped one ("), note
        assert error.startswith("pyagent: error: opa not found: install OPA v"), done.stderr
        assert "PYAGENT_OPA" in error
    # With PYAGENT_OPA, the packaged policy sources are linted as the checkout's are.
    linted = installed.run("policy", "lint", env=installed.env(PYAGENT_OPA=opa_bin))
    assert linted.returncode == 0, linted.stderr
    assert "lint: clean" in linted.stderr


def test_check_a_policy_directory_compiles_once(installed: Installed, opa_bin: str) -> None:
    report = installed.give(EXAMPLE, EXAMPLE.name)
    calls = installed.home / "opa-calls"
    opa = installed.give("", "opa", text=f'#!/bin/sh\necho "$1" >> {calls}\nexec {opa_bin} "$@"\n')
    opa.chmod(0o700)
    policies = installed.home / "proposed"
    shutil.copytree(REPO / "policies", policies)
    subprocess.run(["chown", "-R", installed.user, str(policies)], check=True)
    env = installed.env(PYAGENT_OPA=str(opa))
    args = ("check", str(report), "--at", AT, "--policy", str(policies), "--format", "json")
    first = installed.run(*args, env=env)
    assert first.returncode == 1, first.stderr
    cache = installed.home / ".local" / "state" / "pyagent" / "cache" / "policies"
    assert len(list(cache.glob("*.tar.gz"))) == 1
    compile_once = "build\n"
    assert calls.read_text() == compile_once

    again = installed.run(*args, env=env)  # the same files: the cached build, no opa run
    assert again.returncode == 1, again.stderr
    assert json.loads(again.stdout)["violations"] == json.loads(first.stdout)["violations"]
    assert calls.read_text() == compile_once

    bans = policies / "data" / "pyagent" / "bans" / "data.yaml"
    bans.write_text(bans.read_text().replace("cybersecurity: protection", "changed: protection", 1))
    changed = installed.run(*args, env=env)
    assert changed.returncode == 1, changed.stderr
    assert calls.read_text() == compile_once * 2
    assert len(list(cache.glob("*.tar.gz"))) == 2
    assert json.loads(changed.stdout)["violations"][0]["message"].endswith(
        "European Commission from 2023-03-15T00:00:00Z: changed: protection against threats that could be "
        "exploited against the organisation's corporate environment"
    )


def test_agent_once_against_a_server(installed: Installed, opa_bin: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    agent_token = installed.give("", "agent.token", text=add_token(db, "agents", "agent") + "\n")
    reader = add_token(db, "readers", "reader")
    wasm = tmp_path / "bundle.tar.gz"
    sources = [str(REPO / "policies" / "rego"), str(REPO / "policies" / "data")]
    subprocess.run(
        [opa_bin, "build", "-t", "wasm", "-e", "pyagent/decision", "--ignore", "*_test.rego",
         "--revision", "pkg-r1", "-o", str(wasm), *sources],
        check=True,
        capture_output=True,
    )  # fmt: skip
    store = open_store(db)
    try:
        publish(store, "pyagent", [(wasm.name, wasm.read_bytes())], verification=None, published_by="test")
    finally:
        store.close()
    with run_server(tmp_path, db) as server:
        config = installed.give(
            "",
            "agent.toml",
            text="\n".join(
                [
                    "[device]",
                    'id = "pkg-laptop-1"',
                    'organization = "eu-commission"',
                    'ownership = "corporate"',
                    "mdm_enrolled = true",
                    "[agent]",
                    f'state_dir = "{installed.home / "state"}"',
                    "[services.pyagent]",
                    f'url = "{server.url}"',
                    f'credentials.bearer.token_path = "{agent_token}"',
                    "[bundles.pyagent]",
                    'service = "pyagent"',
                    "[decision_logs]",
                    'service = "pyagent"',
                    "[status]",
                    'service = "pyagent"',
                ]
            )
            + "\n",
        )
        done = installed.run("agent", "run", "--once", "--config", str(config), timeout=120)
        assert done.returncode == 0, done.stderr
        assert "bundle pyagent: revision pkg-r1 active" in done.stderr
        device = _get(f"{server.url}/api/v1/devices/pkg-laptop-1", reader)
    assert device["sender"] == "pkg-laptop-1"
    assert device["organization"] == "eu-commission"
    assert device["bundles"] == {"pyagent": {"revision": "pkg-r1"}}
    assert device["allow"] is (done.returncode == 0)
    assert device["status"]["bundles"]["pyagent"]["active_revision"] == "pkg-r1"
    assert device["status"]["errors"] == []


def _get(url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document
