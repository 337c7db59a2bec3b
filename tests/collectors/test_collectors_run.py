"""The tool runner, with real processes."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pyagent.collectors.base import CollectorError
from pyagent.collectors.run import run_tool, tool_env
from pyagent.errors import NoDecisionError

FakeTool = Callable[[str, str], Path]


def test_returns_stdout_bytes() -> None:
    assert run_tool(["printf", "a\\tb\\n"]) == b"a\tb\n"


def test_hanging_command_is_stopped_at_the_timeout() -> None:
    start = time.monotonic()
    with pytest.raises(CollectorError, match=r"^sleep: no result after 0\.5 s; stopped it$"):
        run_tool(["sleep", "30"], timeout=0.5)
    assert time.monotonic() - start < 5


def test_hang_in_a_child_of_the_tool_is_stopped_too(fake_tool: FakeTool) -> None:
    # The script's own child keeps the pipe open: only killing the process group ends it.
    fake_tool("slowtool", "sleep 30 &\nsleep 30\n")
    start = time.monotonic()
    with pytest.raises(CollectorError, match=r"slowtool: no result after"):
        run_tool(["slowtool"], timeout=0.5)
    assert time.monotonic() - start < 5


def test_output_over_the_cap_is_stopped() -> None:
    start = time.monotonic()
    with pytest.raises(CollectorError, match=r"^yes: printed more than 100000 bytes, the limit; stopped it$"):
        run_tool(["yes"], max_output=100_000, timeout=30)
    assert time.monotonic() - start < 10


def test_missing_binary() -> None:
    with pytest.raises(CollectorError, match=r"^no-such-tool-pyagent: not found"):
        run_tool(["no-such-tool-pyagent", "--version"])


def test_missing_binary_by_path(tmp_path: Path) -> None:
    said = f"adb: not found (looked for '{tmp_path / 'adb'}' on PATH)"
    with pytest.raises(CollectorError, match=f"^{re.escape(said)}$"):
        run_tool([str(tmp_path / "adb")])


def test_not_executable_is_not_found(tmp_path: Path) -> None:
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\necho hi\n")
    said = f"tool: not found (looked for '{tool}' on PATH)"  # not executable: as the shell, not found
    with pytest.raises(CollectorError, match=f"^{re.escape(said)}$"):
        run_tool([str(tool)])


def test_nonzero_exit_names_tool_status_and_first_stderr_line(fake_tool: FakeTool) -> None:
    fake_tool("adb", "echo 'error: no devices/emulators found' >&2\necho more >&2\nexit 1\n")
    with pytest.raises(CollectorError) as info:
        run_tool(["adb", "shell", "pm", "list", "users"], tool="adb")
    assert str(info.value) == "adb: exited with status 1: error: no devices/emulators found"
    assert info.value.exit_code == 3
    assert isinstance(info.value, NoDecisionError)


def test_killed_by_signal(fake_tool: FakeTool) -> None:
    fake_tool("suicide", "kill -TERM $$\n")
    with pytest.raises(CollectorError, match=r"^suicide: killed by signal 15$"):
        run_tool(["suicide"])


def test_arguments_are_not_interpreted_by_a_shell() -> None:
    assert run_tool(["printf", "%s", "$(echo pwned); rm -rf /"]) == b"$(echo pwned); rm -rf /"


def test_environment_is_minimal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYAGENT_SECRET_TOKEN", "s3cret")
    monkeypatch.setenv("HOME", "/home/someone")
    env = dict(
        line.split("=", 1) for line in run_tool(["env"], env_passthrough=["HOME"]).decode().splitlines()
    )
    assert env.pop("PATH") == os.environ["PATH"]
    assert env == {"LC_ALL": "C", "LANG": "C", "HOME": "/home/someone"}


def test_tool_env_skips_unset_passthrough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    assert "ANDROID_SERIAL" not in tool_env(["ANDROID_SERIAL"])


def test_stdin_is_empty() -> None:
    assert run_tool(["cat"], timeout=5) == b""


def test_large_stderr_does_not_block(fake_tool: FakeTool) -> None:
    fake_tool(
        "noisy",
        "i=0; while [ $i -lt 2000 ]; do echo 'warning: something something something' >&2; "
        "i=$((i+1)); done; echo done\n",
    )
    assert run_tool(["noisy"], timeout=30) == b"done\n"


def test_empty_argv_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"^run_tool needs a program$"):
        run_tool([])
