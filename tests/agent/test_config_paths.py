"""Paths in the agent config and in path options are taken as written: what a shell would have
expanded there (``~``, ``$HOME``) is refused, naming it, rather than made a folder named ``~`` in the
working directory (``/~`` under a service manager)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyagent.config.check import unexpanded_part
from tests.agent.conftest import REPO, pyagent_env, run_pyagent


@pytest.mark.parametrize(
    ("path", "part"),
    [
        ("~", "'~'"),
        ("~/state", "'~'"),
        ("~pyagent/state", "'~'"),
        ("$HOME/state", "$HOME"),
        ("/var/$USER/state", "$USER"),
        ("${STATE}/spool.sqlite", "${STATE}"),
        # names a shell leaves as they are, so does the agent
        ("~backup", None),
        ("/srv/~/state", None),
        ("/srv/my$app/key.pem", None),
        ("/var/lib/pyagent", None),
    ],
)
def test_what_a_shell_would_expand_is_found(path: str, part: str | None) -> None:
    assert unexpanded_part(path) == part


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["agent", "status", "--state-dir", "~/state"], "agent status"),
        (["check", "examples/reports/india-personal-lite.json", "--state-dir", "~/state"], "check"),
    ],
)
def test_a_quoted_tilde_in_a_path_option_is_refused(args: list[str], command: str) -> None:
    done = run_pyagent(*args)
    assert (done.returncode, done.stderr) == (
        2,
        "pyagent: error: Invalid value for '--state-dir': '~/state' must be a full path: '~' is not "
        f"expanded (the shell left it quoted) (see pyagent {command} --help)\n",
    )


def test_a_quoted_tilde_in_the_state_dirs_variable_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pyagent", "log", "verify"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**pyagent_env(), "PYAGENT_STATE_DIR": "~/state"},
        cwd=REPO,
        check=False,
    )
    assert (done.returncode, done.stderr) == (
        2,
        "pyagent: error: --state-dir '~/state' must be a full path: '~' is not expanded (the shell left "
        "it quoted)\n",
    )
