"""`pyagent collect` of a phone capture or an export: the device facts the agent config gives, and what
is said of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "collectors"


def test_a_device_id_from_the_config_for_an_export_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent config's id is most likely this machine's: a phone's capture recorded under it would be
    the workstation's decision. Taken, as documented, and said."""
    config = tmp_path / "agent.toml"
    config.write_text(
        '[device]\nid = "cfg-1"\norganization = "eu-council"\nownership = "personal"\nmdm_enrolled = false\n'
    )
    monkeypatch.setenv("PYAGENT_CONFIG", str(config))
    capture = FIXTURES / "android-pm" / "personal-plain.txt"
    result = run(["collect", "--source", "android-pm", "--from", str(capture)])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["device"]["id"] == "cfg-1"
    assert result.stderr.splitlines()[0] == (
        f"pyagent: note: device id 'cfg-1' is device.id of {config}, the agent config; if the android-pm "
        "inventory is another device's, give --device-id"
    )
    given = run(["collect", "--source", "android-pm", "--from", str(capture), "--device-id", "phone-1"])
    assert "device.id of" not in given.stderr
