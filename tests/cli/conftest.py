"""Fixtures for the CLI tests, and the in-process CLI run they share."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import invoke
from tests.helpers.opa_server import RunningOpa

#: ``pyagent ARGS`` in-process (click's runner); see :func:`tests.helpers.cli.invoke`.
run = invoke

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "reports"
AT = "2023-03-16T09:30:00Z"
"""The day after the Commission's and the Council's bans took effect (2023-03-15)."""


@pytest.fixture(params=["embedded", "opa"])
def engine_args(request: pytest.FixtureRequest, policy_bundle: Path) -> list[str]:
    """The same test on both engines: in-process, and a real OPA server with the shipped policies."""
    if request.param == "embedded":
        return ["--engine", "embedded"]
    server: RunningOpa = request.getfixturevalue("opa_server")
    return ["--engine", "opa", "--opa-url", server.url, "--opa-timeout", "30", "--opa-deadline", "60"]
