"""A root agent trusts only root's files (``pyagent.config.trust``): its config, keys, tokens, CA
certificates and log key, and the directories they are in, must belong to root and be writable by no
one else, or ``agent run`` refuses to start (exit 2). A local-attacker audit made a root agent report
its device as personal and unenrolled, so compliant, by editing a world-writable agent.toml."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pyagent.config import trust
from pyagent.config.agent import load_config
from pyagent.errors import InvalidInputError
from tests.helpers.cli import invoke

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the check applies to an agent run by root")

DEVICE = {"id": "laptop-17", "ownership": "corporate", "mdm_enrolled": True, "organization": "eu-commission"}


def _run(config: Path) -> tuple[int, str]:
    done = invoke(["agent", "run", "--once", "--config", str(config)])
    return done.exit_code, done.stderr.splitlines()[-1] if done.stderr else ""


def test_a_config_others_can_write_is_refused(config_file: Callable[..., Path]) -> None:
    config = config_file(device=DEVICE)
    config.chmod(0o666)
    assert _run(config) == (
        2,
        f"pyagent: error: {config}: the agent config is writable by group or others (mode 0666), and this "
        f"agent runs as root; chmod go-w {config}",
    )


def test_a_config_another_user_owns_is_refused(config_file: Callable[..., Path]) -> None:
    config = config_file(device=DEVICE)
    os.chown(config, 65534, 65534)
    assert _run(config) == (
        2,
        f"pyagent: error: {config}: the agent config belongs to uid 65534, and this agent runs as root: "
        f"whoever owns it decides what the agent trusts; chown root {config}",
    )


def test_a_key_in_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # (not sticky: anyone may replace the file)
    key = shared / "bundle.pub.pem"
    key.write_text("-----BEGIN PUBLIC KEY-----\n")
    config = tmp_path / "agent.toml"
    config.write_text(f'[device]\nid = "x"\n\n[keys.signer]\nkey_path = "{key}"\nalgorithm = "ES256"\n')
    with pytest.raises(InvalidInputError) as refused:
        trust.check_trusted_files(load_config(str(config)))
    assert str(refused.value) == (
        f"{shared}: the directory of the bundle verification key signer is writable by group or others "
        f"(mode 0777), and this agent runs as root; chmod go-w {shared}"
    )
    shared.chmod(0o1777)  # sticky (as /tmp): others cannot replace root's file
    trust.check_trusted_files(load_config(str(config)))


def test_root_s_own_files_readable_by_others_pass_and_each_trusted_file_is_listed(tmp_path: Path) -> None:
    token, ca, log_key = (tmp_path / name for name in ("agent.token", "ca.pem", "log.key"))
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nhmac_key_file = "{log_key}"\n\n'
        f'[services.fleet]\nurl = "https://fleet.example.org"\ncredentials.bearer.token_path = "{token}"\n'
        f'tls.ca_cert = "{ca}"\n'
    )
    config.chmod(0o644)
    assert [(str(path), what) for path, what in trust.trusted_files(load_config(str(config)))] == [
        (str(config), "agent config"),
        (str(token), "token of service fleet"),
        (str(ca), "CA certificate of service fleet"),
        (str(log_key), "decision log key (agent.hmac_key_file)"),
    ]
    trust.check_trusted_files(load_config(str(config)))  # (missing ones are said where they are read)


def test_a_users_own_agent_is_not_held_to_it(
    config_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_file(device=DEVICE)
    config.chmod(0o666)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    trust.check_trusted_files(load_config(str(config)))


def test_a_file_not_there_yet_is_checked_by_its_directory_and_flags_count_too(tmp_path: Path) -> None:
    """A missing ``[opa] ca`` in a directory others can write: whoever can write it could put one there
    (review). A ``--bundle`` given on the command line is trusted as much as the config."""
    from pyagent.engines.base import EngineSettings

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[device]\nid = "x"\n\n[opa]\nurl = "https://opa.example.org"\nca = "{shared / "ca.pem"}"\n'
    )
    with pytest.raises(InvalidInputError) as refused:
        trust.check_trusted_files(load_config(str(config)))
    assert str(refused.value) == (
        f"{shared}: the directory of the OPA CA certificate (opa.ca) is writable by group or others "
        f"(mode 0777), and this agent runs as root; chmod go-w {shared}"
    )
    config.write_text('[device]\nid = "x"\n')
    bundle = tmp_path / "bundle.tar.gz"
    bundle.write_bytes(b"")
    bundle.chmod(0o646)
    with pytest.raises(InvalidInputError) as flagged:
        trust.check_trusted_files(load_config(str(config)), EngineSettings(bundle=str(bundle)))
    assert str(flagged.value) == (
        f"{bundle}: the policy bundle (--bundle) is writable by group or others (mode 0646), and this agent "
        f"runs as root; chmod go-w {bundle}"
    )


def test_a_directory_above_may_be_another_users_but_writable_by_no_one_else(tmp_path: Path) -> None:
    """A checkout in another user's home holds a root-owned config: fine; a directory on the way that
    anyone may write (not sticky) lets anyone swap what is under it: refused."""
    above = tmp_path / "home"
    (above / "etc").mkdir(parents=True)
    config = above / "etc" / "agent.toml"
    config.write_text('[device]\nid = "x"\n')
    os.chown(above, 65534, 65534)
    trust.check_trusted_files(load_config(str(config)))
    above.chmod(0o777)
    with pytest.raises(InvalidInputError) as refused:
        trust.check_trusted_files(load_config(str(config)))
    assert str(refused.value) == (
        f"{above}: the directory of the agent config is writable by group or others (mode 0777), and this "
        f"agent runs as root; chmod go-w {above}"
    )
