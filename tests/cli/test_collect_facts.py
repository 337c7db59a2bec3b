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


def test_a_capture_taken_earlier_is_stamped_with_when_it_was_taken(tmp_path: Path) -> None:
    """The report's collected_at is when the inventory was taken: for a capture made earlier, given
    (it was always the time of the import, so an old capture read as fresh)."""
    capture = FIXTURES / "android-pm" / "personal-plain.txt"
    facts = ["--device-id", "phone-1", "--ownership", "personal", "--no-mdm-enrolled", "--org", "eu-council"]
    taken = run(["collect", "--source", "android-pm", "--from", str(capture), *facts, "--collected-at",
                 "2023-03-16T09:30:00Z"])  # fmt: skip
    assert taken.exit_code == 0, taken.stderr
    assert json.loads(taken.stdout)["collected_at"] == "2023-03-16T09:30:00Z"
    bad = run(
        ["collect", "--source", "android-pm", "--from", str(capture), *facts, "--collected-at", "yesterday"]
    )
    assert (bad.exit_code, bad.stdout, bad.stderr) == (
        2,
        "",
        "pyagent: error: --collected-at: 'yesterday' is not an RFC 3339 timestamp (example: "
        "2023-03-16T09:30:00Z)\n",
    )


@pytest.mark.parametrize(
    ("device_id", "flag_says", "config_says"),
    [
        (" d1 ", "' d1 ' begins or ends with white space", "' d1 '"),
        ("d\u200b1", "'d\\u200b1' contains U+200B, which no tool shows", "'d\\u200b1'"),
    ],
)
def test_a_device_id_no_exemption_would_match_is_refused(
    device_id: str, flag_says: str, config_says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shell's quoting slip (" d1 ") was written into the report as it came: an exemption for d1
    never matched that device (collectors audit)."""
    config = tmp_path / "agent.toml"
    config.write_text(f'[device]\nid = "{device_id}"\nownership = "corporate"\nmdm_enrolled = true\n')
    monkeypatch.setenv("PYAGENT_CONFIG", str(tmp_path / "none.toml"))
    capture = FIXTURES / "android-pm" / "personal-plain.txt"
    facts = ["--ownership", "corporate", "--mdm-enrolled", "--org", "eu-commission"]
    for command in (["collect", "--source", "android-pm", "--from", str(capture)], ["check"]):
        result = run([*command, *facts, "--device-id", device_id])
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", (
            f"pyagent: error: Invalid value for '--device-id': {flag_says} "
            f"(see pyagent {command[0]} --help)\n"
        ))  # fmt: skip
    result = run(["collect", "--source", "android-pm", "--from", str(capture), "--config", str(config)])
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", (
        f"pyagent: error: device.id in {config} must not begin or end with white space or hold an "
        f"invisible character, got {config_says} (give --device-id)\n"
    ))  # fmt: skip
    if device_id.strip() != device_id:
        return  # (a host name is taken without white space at its ends)
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("PYAGENT_CONFIG", str(tmp_path / "empty.toml"))
    monkeypatch.setattr("socket.gethostname", lambda: device_id)  # (this machine's id by default)
    result = run(["collect", "--source", "linux", *facts])
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", (
        "pyagent: error: this machine's host name, the device id, must not begin or end with white space or "
        f"hold an invisible character, got {config_says} (give --device-id)\n"
    ))  # fmt: skip
