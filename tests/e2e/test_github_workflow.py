"""The example CI workflow of a policy repository (examples/github-workflow.yml), run as written.

Every ``run:`` step is executed in order, as the runner does (``bash --noprofile --norc -eo pipefail``,
in the repository, with the workflow's and the step's ``env``), in a copy of a policy repository made
here: this checkout's ``policies/`` and sample reports. The venv's ``pyagent`` and the pinned ``opa``
are on PATH (standing in for the install and ``setup-opa`` steps, the only ones skipped); secrets are a
signing key made here and an admin token of a real ``pyagent server run`` that verifies publishes with
the matching public key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import pyagent
from tests.helpers.pyagent_server import add_token, run_server

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "examples" / "github-workflow.yml"
EXAMPLES = REPO / "examples" / "reports"
RUNNER_ACTIONS = ("actions/checkout@", "actions/setup-python@", "open-policy-agent/setup-opa@")
SAMPLES = {
    "compliant": ["eu-commission-corporate-clean", "us-federal-personal-tiktok"],
    "non-compliant": ["eu-commission-personal-enrolled-tiktok", "india-personal-lite"],
}
EXPRESSION = re.compile(r"\$\{\{\s*(secrets|vars|env)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Step:
    name: str
    script: str
    env: dict[str, str]


def load_workflow() -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return document


def job_steps(job: dict[str, Any], context: dict[str, dict[str, str]]) -> list[Step]:
    """The job's ``run:`` steps, with ``${{ secrets.X }}`` / ``vars`` / ``env`` in their env resolved."""
    steps = []
    for step in job["steps"]:
        if "uses" in step:
            assert step["uses"].startswith(RUNNER_ACTIONS), step["uses"]
            continue
        assert "${{" not in step["run"], f"{step['name']}: expressions in a script invite injection"
        if step.get("id") == "install":  # pip install from the registry: the venv's pyagent stands in
            continue
        env = {}
        for key, value in step.get("env", {}).items():
            found = EXPRESSION.fullmatch(value)
            assert found, f"{step['name']}: env {key}: unexpected value {value!r}"
            env[key] = context[found[1]][found[2]]
        steps.append(Step(step["name"], step["run"], env))
    return steps


def run_step(step: Step, repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = repo.parent / "step.sh"
    script.write_text(step.script)
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=repo, env={**env, **step.env}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.fixture
def policy_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "policy-repo"
    shutil.copytree(REPO / "policies", repo / "policies")
    for kind, names in SAMPLES.items():
        (repo / "reports" / kind).mkdir(parents=True)
        for name in names:
            shutil.copy(EXAMPLES / f"{name}.json", repo / "reports" / kind)
    (repo / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(WORKFLOW, repo / ".github" / "workflows" / "policy.yml")
    return repo


@pytest.fixture
def runner_env(tmp_path: Path) -> dict[str, str]:
    """The runner's environment: the venv's pyagent and the pinned opa first on PATH, a push to main."""
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PYAGENT_", "GITHUB_"))}
    path = os.pathsep.join([str(Path(sys.executable).parent), str(REPO / ".tools" / "bin"), keep["PATH"]])
    workflow_env = {k: str(v) for k, v in load_workflow()["env"].items()}
    return {
        **keep, **workflow_env, "PATH": path, "CI": "true", "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main", "RUNNER_TEMP": str(runner_temp),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }  # fmt: skip


def signing_keys(directory: Path) -> tuple[str, Path]:
    """A new RSA key pair: the private key's PEM (the secret) and the public key's file (the server's)."""
    key = rsa.generate_private_key(65537, 2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = directory / "bundle-signing.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_the_workflow_shape() -> None:
    workflow = load_workflow()
    assert workflow[True] == {
        "pull_request": None,
        "push": {"branches": ["main"]},
    }  # YAML 1.1 reads on: as True
    publish = workflow["jobs"]["publish"]
    assert publish["needs"] == "check"
    assert publish["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    names = {
        job: [s.get("name", s.get("uses")) for s in spec["steps"]] for job, spec in workflow["jobs"].items()
    }
    assert names["check"][-3:] == [
        "Test the policy",
        "Lint the policy and its data",
        "Decide the sample reports",
    ]
    assert names["publish"][-2:] == ["Sign the bundles", "Publish"]
    pinned = re.search(r"^OPA_VERSION := (\S+)$", (REPO / "versions.mk").read_text(), re.MULTILINE)
    assert pinned is not None
    assert workflow["env"] == {"PYAGENT_VERSION": pyagent.__version__, "OPA_VERSION": pinned[1]}


def test_check_then_publish_as_written(policy_repo: Path, runner_env: dict[str, str], tmp_path: Path) -> None:
    private_pem, public_key = signing_keys(tmp_path)
    db = f"sqlite:///{tmp_path / 'server.db'}"
    admin, agent = add_token(db, "policy-ci", "admin"), add_token(db, "agents", "agent")
    config = tmp_path / "server.toml"
    config.write_text(f'[server.verification]\nkey_path = "{public_key}"\n')
    jobs = load_workflow()["jobs"]
    with run_server(tmp_path, db, extra_args=["--config", str(config)]) as server:
        context = {
            "secrets": {"BUNDLE_SIGNING_KEY": private_pem, "PYAGENT_ADMIN_TOKEN": admin},
            "vars": {"PYAGENT_SERVER_URL": server.url},
        }
        outputs = {}
        for job in ("check", "publish"):
            for step in job_steps(jobs[job], context):
                done = run_step(step, policy_repo, runner_env)
                assert done.returncode == 0, (
                    f"{job}: {step.name}: exit {done.returncode}\n{done.stdout}{done.stderr}"
                )
                outputs[step.name] = done
        published = json.loads(outputs["Publish"].stdout)
        revision = yaml.safe_load((policy_repo / "policies" / "data" / "pyagent" / "data.yaml").read_text())
        assert (published["name"], published["revision"], published["signed"], published["targets"]) == (
            "pyagent", revision["revision"], True, ["rego", "wasm"],
        )  # fmt: skip
        request = urllib.request.Request(
            f"{server.url}/bundles/pyagent", headers={"Authorization": f"Bearer {agent}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            served = answer.read()
    built = (policy_repo / "build" / "server.tar.gz").read_bytes()
    assert hashlib.sha256(served).hexdigest() == hashlib.sha256(built).hexdigest()
    assert not (Path(runner_env["RUNNER_TEMP"]) / "bundle-signing.pem").exists()
    annotations = outputs["Decide the sample reports"].stdout.splitlines()
    assert [line for line in annotations if line.startswith(("::error", "::warning"))] == []


def test_a_sample_that_breaks_fails_the_check_with_an_annotation(
    policy_repo: Path, runner_env: dict[str, str]
) -> None:
    """A device expected compliant that is not: the job fails and the run shows it on the report."""
    moved = policy_repo / "reports" / "compliant" / "india-personal-lite.json"
    (policy_repo / "reports" / "non-compliant" / "india-personal-lite.json").rename(moved)
    (step,) = [
        s for s in job_steps(load_workflow()["jobs"]["check"], {}) if s.name == "Decide the sample reports"
    ]
    done = run_step(step, policy_repo, runner_env)
    assert done.returncode == 1
    errors = [line for line in done.stdout.splitlines() if line.startswith("::error")]
    assert [line.split("::")[1] for line in errors] == [
        "error file=reports/compliant/india-personal-lite.json,title=india/tiktok"
    ]
