"""Session fixtures on real parts: the pinned opa, a freshly compiled policy bundle, a real OPA server."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

from tests.helpers.opa_bin import opa_binary
from tests.helpers.opa_server import POLICY_DIRS, RunningOpa, run_opa_server

REPO = Path(__file__).resolve().parents[1]


def _interrupted(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def pytest_configure(config: pytest.Config) -> None:
    """A run stopped by SIGTERM (a CI timeout, `kill` of `make test`) tears its fixtures down as one
    stopped by Ctrl-C does: the PostgreSQL, nginx and OPA servers they started are stopped, not left
    running (SIGTERM's default ends the process at once)."""
    signal.signal(signal.SIGTERM, _interrupted)


@pytest.fixture(scope="session")
def opa_bin() -> str:
    return opa_binary()


@pytest.fixture(scope="session")
def policy_bundle(opa_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The shipped policy compiled to wasm now, from the sources under test (never a stale build)."""
    out = tmp_path_factory.mktemp("bundle") / "bundle.tar.gz"
    subprocess.run(
        [
            opa_bin,
            "build",
            "-t",
            "wasm",
            "-e",
            "pyagent/decision",
            "--ignore",
            "*_test.rego",
            "-o",
            str(out),
            *(str(p) for p in POLICY_DIRS),
        ],
        check=True,
        capture_output=True,
    )
    previous = os.environ.get("PYAGENT_BUNDLE")
    os.environ["PYAGENT_BUNDLE"] = str(out)
    yield out
    if previous is None:
        os.environ.pop("PYAGENT_BUNDLE", None)
    else:
        os.environ["PYAGENT_BUNDLE"] = previous


@pytest.fixture(scope="session")
def opa_server(opa_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningOpa]:
    """A real `opa run --server` with the shipped policies, on a free loopback port."""
    with run_opa_server(opa_bin, tmp_path_factory.mktemp("opa")) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_ambient_opa_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose engines explicitly: an OPA URL or token in the environment must not leak in."""
    for name in ("PYAGENT_OPA_URL", "PYAGENT_OPA_TOKEN", "PYAGENT_OPA_CA", "PYAGENT_CONFIG"):
        monkeypatch.delenv(name, raising=False)


#: ``fake_tool(name, body)``: an executable shell script ``name`` put first on PATH.
FakeTool = Callable[[str, str], Path]


@pytest.fixture
def fake_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTool:
    """Install an executable shell script named ``name`` in a directory put first on PATH.

    This is fault injection and capture replay: the script prints real captures (or hangs, or fails) so
    the collector runs its real code path, through the real process runner.
    """
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")

    def install(name: str, body: str) -> Path:
        script = bin_dir / name
        script.write_text("#!/bin/sh\n" + body, encoding="utf-8")
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return script

    return install
