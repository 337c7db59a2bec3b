"""Fixtures for the fleet tests: the realistic fleet through the real CLI, as HTML and as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.html_fleets import realistic_fleet, run_cli


@pytest.fixture(scope="session")
def realistic_fleet_outputs(policy_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The realistic fleet through the real CLI, as HTML and as JSON (once per test process)."""
    work = tmp_path_factory.mktemp("fleet-html")
    fleet = realistic_fleet(work / "fleet.jsonl")
    page = work / "fleet.html"
    html_run = run_cli(str(fleet), "--format", "html", "-o", str(page))
    json_run = run_cli(str(fleet), "--format", "json")
    assert html_run.exit_code == json_run.exit_code == 1, html_run.stderr + json_run.stderr
    assert html_run.stderr == json_run.stderr  # the same text summary
    return {
        "dir": work,
        "page": page,
        "html": page.read_text(encoding="utf-8"),
        "json": json.loads(json_run.stdout),
    }
