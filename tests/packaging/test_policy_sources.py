"""Which policy pyagent decides with, and how it finds opa: a checkout's stale build/bundle.tar.gz is never
used silently, ``check --policy`` conflicts are usage errors, no opa is one line with exit 2."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from pyagent.policy import shipped
from pyagent.policy.docs import bundle_policy_data, policy_data, render_markdown
from tests.helpers.cli import invoke as run

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "reports" / "eu-commission-personal-enrolled-tiktok.json"
AT = "2023-03-16T09:30:00Z"


@pytest.fixture
def checkout(tmp_path: Path, policy_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout of its own (policies/, versions.mk, a build/bundle.tar.gz built from them) and no opa
    anywhere unless a test sets PYAGENT_OPA; the state directory in tmp_path."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "policies", root / "policies")
    shutil.copyfile(REPO / "versions.mk", root / "versions.mk")
    (root / "build").mkdir()
    built = root / "build" / "bundle.tar.gz"
    shutil.copyfile(policy_bundle, built)
    monkeypatch.setattr(shipped, "checkout", lambda: root)
    monkeypatch.setattr(shipped, "checkout_bundle", lambda: built)
    monkeypatch.delenv("PYAGENT_BUNDLE", raising=False)
    monkeypatch.delenv("PYAGENT_OPA", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("PYAGENT_STATE_DIR", str(tmp_path / "state"))
    return root


def edit_policy(root: Path) -> Path:
    """Change the TikTok ban's reason, one second after the build (mtimes can be coarse)."""
    bans = root / "policies" / "data" / "pyagent" / "bans" / "data.yaml"
    bans.write_text(bans.read_text().replace("cybersecurity: protection", "changed: protection", 1))
    later = time.time() + 2
    os.utime(bans, (later, later))
    return bans


def decide(*extra: str) -> Any:
    return run(["check", str(EXAMPLE), "--at", AT, "--format", "json", *extra])


def test_a_current_build_is_used_as_it_is(checkout: Path) -> None:
    result = decide()
    assert result.exit_code == 1, result.stderr
    assert "note" not in result.stderr
    assert json.loads(result.stdout)["violations"][0]["message"].endswith("cybersecurity: protection against "
        "threats that could be exploited against the organisation's corporate environment")  # fmt: skip


@pytest.mark.parametrize("via", ["default", "PYAGENT_BUNDLE", "--bundle"])
def test_a_stale_build_is_replaced_by_a_fresh_one_with_a_note(
    checkout: Path, opa_bin: str, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    edit_policy(checkout)
    monkeypatch.setenv("PYAGENT_OPA", opa_bin)
    built = str(checkout / "build" / "bundle.tar.gz")
    extra = ["--bundle", built] if via == "--bundle" else []
    if via == "PYAGENT_BUNDLE":
        monkeypatch.setenv("PYAGENT_BUNDLE", built)
    result = decide(*extra)
    assert result.exit_code == 1, result.stderr
    assert result.stderr.splitlines()[0] == (
        "pyagent: note: build/bundle.tar.gz is older than policies/data/pyagent/bans/data.yaml; "
        "deciding with policies/ compiled now (`make policy` updates build/)"
    )
    assert "changed: protection" in json.loads(result.stdout)["violations"][0]["message"]


def test_an_edit_given_an_old_modification_time_or_a_deletion_makes_the_build_stale(
    checkout: Path, opa_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by an audit: only modification times were compared, so a file restored with its old one
    (``touch -d``, ``cp -p``, ``rsync -a``) or deleted left the build in use."""
    monkeypatch.setenv("PYAGENT_OPA", opa_bin)
    bans = edit_policy(checkout)
    before = (checkout / "build" / "bundle.tar.gz").stat().st_mtime - 100
    os.utime(bans, (before, before))
    result = decide()
    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith(
        "pyagent: note: build/bundle.tar.gz is older than policies/data/pyagent/bans"
    )
    assert "changed: protection" in json.loads(result.stdout)["violations"][0]["message"]

    shutil.copyfile(checkout / "build" / "bundle.tar.gz", checkout / "build" / "fresh.tar.gz")
    (checkout / "build" / "fresh.tar.gz").replace(checkout / "build" / "bundle.tar.gz")  # newer than all
    assert "note" not in decide().stderr
    (checkout / "policies" / "data" / "pyagent" / "exemptions" / "data.yaml").unlink()
    result = decide()
    assert result.exit_code == 1, result.stderr
    assert result.stderr.splitlines()[0] == (
        "pyagent: note: build/bundle.tar.gz is older than policies/data/pyagent/exemptions; "
        "deciding with policies/ compiled now (`make policy` updates build/)"
    )


def test_a_stale_build_without_opa_is_refused(checkout: Path) -> None:
    edit_policy(checkout)
    result = decide()
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert (
        "bundle.tar.gz is older than policies/data/pyagent/bans/data.yaml: run `make policy`" in result.stderr
    )


@pytest.mark.parametrize("command", [["policy", "test"], ["policy", "lint"], ["policy", "bundle"]])
def test_policy_commands_without_opa_say_how_to_get_it(checkout: Path, command: list[str]) -> None:
    result = run(command)
    assert result.exit_code == 2
    assert result.stderr == (
        "pyagent: error: opa not found: run `make opa` (builds the pinned "
        f"v{shipped.pinned_opa_version()} into .tools/bin), put opa on PATH, or set PYAGENT_OPA to its path\n"
    )


def test_a_pyagent_opa_that_is_not_there_is_exit_2(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYAGENT_OPA", str(tmp_path / "no-opa"))
    result = run(["policy", "lint"])
    assert (result.exit_code, result.stderr) == (
        2, f"pyagent: error: PYAGENT_OPA={tmp_path / 'no-opa'}: not an executable file; run `make opa` "
        f"(builds the pinned v{shipped.pinned_opa_version()} into .tools/bin), put opa on PATH, or set "
        "PYAGENT_OPA to its path\n",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--bundle", "other.tar.gz"], "--policy and --bundle both name the policy: give one"),
        (
            ["--engine", "opa", "--opa-url", "http://127.0.0.1:9"],
            "--policy decides with the embedded engine; an OPA server has its own policy",
        ),
        (
            ["--verification-key", "key.pem"],
            "--policy compiles an unsigned bundle: --verification-key is for --bundle",
        ),
    ],
)
def test_check_policy_conflicts_are_usage_errors(extra: list[str], message: str) -> None:
    result = decide("--policy", str(REPO / "policies"), *extra)
    assert (result.exit_code, result.stderr) == (2, f"pyagent: error: {message}\n")


def test_check_policy_of_a_missing_directory_is_exit_2(tmp_path: Path) -> None:
    result = decide("--policy", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert result.stderr == f"pyagent: error: {tmp_path / 'nope'}: no such policy directory\n"


def test_check_policy_refuses_a_shared_state_directory(
    tmp_path: Path, opa_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    monkeypatch.setenv("PYAGENT_OPA", opa_bin)
    result = decide("--policy", str(REPO / "policies"), "--state-dir", str(state))
    assert (result.exit_code, result.stderr) == (
        2, f"pyagent: error: {state}: the state directory is writable by group or others (mode 0777); "
        f"chmod go-w {state}\n",
    )  # fmt: skip


def test_docs_from_a_bundle_equal_docs_from_the_sources(
    policy_bundle: Path, opa_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYAGENT_OPA", opa_bin)
    from_sources = render_markdown(policy_data([str(p) for p in shipped.policy_sources()]))
    assert render_markdown(bundle_policy_data(policy_bundle)) == from_sources
    result = run(["policy", "docs", "--bundle", str(policy_bundle)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == from_sources
