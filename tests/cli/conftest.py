"""Fixtures for the CLI tests, and the in-process CLI run they share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pyagent.cli import cli
from tests.helpers.opa_server import RunningOpa

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "reports"
AT = "2023-03-16T09:30:00Z"
"""The day after the Commission's and the Council's bans took effect (2023-03-15)."""


def run(args: list[str], stdin: str | None = None) -> Any:
    """``pyagent ARGS`` in-process (click's runner), with ``stdin`` as standard input."""
    return CliRunner().invoke(cli, args, input=stdin)


@pytest.fixture(params=["embedded", "opa"])
def engine_args(request: pytest.FixtureRequest, policy_bundle: Path) -> list[str]:
    """The same test on both engines: in-process, and a real OPA server with the shipped policies."""
    if request.param == "embedded":
        return ["--engine", "embedded"]
    server: RunningOpa = request.getfixturevalue("opa_server")
    return ["--engine", "opa", "--opa-url", server.url, "--opa-timeout", "30", "--opa-deadline", "60"]
