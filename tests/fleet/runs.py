"""What the fleet and impact tests share: the checkout's example reports, the instant they are decided
at, an in-process CLI run, and a candidate policy with one planted rule whose flips are known."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers.cli import invoke

#: ``pyagent ARGS`` in-process (click's runner); see :func:`tests.helpers.cli.invoke`.
run = invoke

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "reports"
AT = "2023-03-16T09:30:00Z"


CAPCUT_RULE = """    capcut:
      ban: capcut
      scopes: [corporate]
      effective_from: "2023-03-20T00:00:00Z"
"""


def planted_candidate(tmp_path: Path) -> Path:
    """A copy of the shipped policies where the Commission also bans CapCut on corporate devices from
    2023-03-20 (EEAS inherits it): the flips an impact run must find."""
    candidate = tmp_path / "candidate"
    shutil.copytree(REPO / "policies", candidate)
    orgs = candidate / "data" / "pyagent" / "organizations" / "data.yaml"
    text = orgs.read_text()
    anchor = "eu-council:\n"
    assert text.count(anchor) == 1
    orgs.write_text(text.replace(anchor, CAPCUT_RULE + anchor))
    return candidate
