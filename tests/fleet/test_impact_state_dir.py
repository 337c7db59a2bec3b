"""``impact`` keeps its compiled policies in the state directory every command takes
(``PYAGENT_STATE_DIR``), not in the agent's ``/var/lib/pyagent`` whatever the environment says."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fleet.runs import AT, EXAMPLES, REPO, run


def test_impact_compiles_into_the_state_dir_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("PYAGENT_STATE_DIR", str(state))
    policies = str(REPO / "policies")
    report = str(EXAMPLES / "eu-commission-corporate-clean.json")
    result = run(["impact", "--baseline", policies, "--candidate", policies, report, "--at", AT])
    assert result.exit_code == 0, result.stderr
    cached = sorted(p.name for p in (state / "cache" / "policies").iterdir())
    assert len(cached) == 1 and cached[0].endswith(".tar.gz")  # one version, compiled once for both
