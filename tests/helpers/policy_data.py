"""The shipped policy data as the tests read it: through pyagent's own strict loader, so that a data
edit (a bumped ``revision``) needs no test edit."""

from __future__ import annotations

from pathlib import Path

from pyagent.policy.yamlload import load

POLICY_DATA = Path(__file__).resolve().parents[2] / "policies" / "data"


def shipped_revision() -> str:
    """``data.pyagent.revision`` of the checkout's policy data."""
    revision = load(POLICY_DATA / "pyagent" / "data.yaml").value["revision"]
    assert isinstance(revision, str) and revision
    return revision
