"""Fixtures for the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.opa_server import RunningOpa


@pytest.fixture(params=["embedded", "opa"])
def engine_args(request: pytest.FixtureRequest, policy_bundle: Path) -> list[str]:
    """The same test on both engines: in-process, and a real OPA server with the shipped policies."""
    if request.param == "embedded":
        return ["--engine", "embedded"]
    server: RunningOpa = request.getfixturevalue("opa_server")
    return ["--engine", "opa", "--opa-url", server.url, "--opa-timeout", "30", "--opa-deadline", "60"]
