"""Shared helpers for the collector tests: fixture paths and fake executables on PATH."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "collectors"

FakeTool = Callable[[str, str], Path]


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


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
