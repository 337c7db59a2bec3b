"""The agent config: agent.toml and OPA's config.yaml, OPA's keys and meaning, errors naming the key and
the file, secrets only from files, and a state directory only its owner can write."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from pyagent.config.agent import agent_settings, load_config
from pyagent.config.opa import Polling
from pyagent.config.statedir import default_state_dir, private_dir, private_file
from pyagent.errors import InvalidInputError
from tests.agent.conftest import run_pyagent

OPA_YAML = """
services:
  pyagent:
    url: https://pyagent.internal:8282/
    credentials: {bearer: {token_path: /etc/pyagent/agent.token}}
    tls: {ca_cert: /etc/pyagent/ca.pem}
bundles:
  pyagent:
    service: pyagent
    resource: bundles/pyagent
    polling: {min_delay_seconds: 30, max_delay_seconds: 60, long_polling_timeout_seconds: 300}
    signing: {keyid: signer, scope: eu-fleet}
    persist: true
    size_limit_bytes: 1048576
keys:
  signer: {key_path: /etc/pyagent/signer.pub.pem, algorithm: PS256}
decision_logs:
  service: pyagent
  reporting: {min_delay_seconds: 5, max_delay_seconds: 10, upload_size_limit_bytes: 65536}
status: {service: pyagent}
labels: {fleet: eu-west}
"""


def test_an_opa_config_yaml_is_read_with_opas_keys(tmp_path: Path) -> None:
    path = tmp_path / "opa.yaml"
    path.write_text(OPA_YAML)
    tables = load_config(path).tables
    service = tables.services["pyagent"]
    assert (service.url, service.token_path, service.ca_cert) == (
        "https://pyagent.internal:8282",
        Path("/etc/pyagent/agent.token"),
        Path("/etc/pyagent/ca.pem"),
    )
    bundle = tables.bundles["pyagent"]
    assert (bundle.service, bundle.resource, bundle.polling) == (
        "pyagent",
        "bundles/pyagent",
        Polling(30, 60, 300),
    )
    assert (bundle.keyid, bundle.scope, bundle.signed, bundle.persist, bundle.size_limit_bytes) == (
        "signer",
        "eu-fleet",
        True,
        True,
        1048576,
    )
    assert (tables.keys["signer"].key_path, tables.keys["signer"].algorithm) == (
        Path("/etc/pyagent/signer.pub.pem"),
        "PS256",
    )
    logs = tables.decision_logs
    assert logs is not None
    assert (logs.service, logs.resource, logs.min_delay, logs.max_delay, logs.upload_size_limit_bytes) == (
        "pyagent",
        "/logs",
        5,
        10,
        65536,
    )
    assert tables.status_service == "pyagent" and tables.labels == {"fleet": "eu-west"}


def test_the_same_tables_in_agent_toml_and_opa_defaults(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[agent]\nstate_dir = "/srv/pyagent"\n[services.s]\nurl = "http://127.0.0.1:8282"\n'
        "[bundles.pyagent]\n[decision_logs]\n[status]\n"
    )
    config = load_config(path)
    bundle = config.tables.bundles["pyagent"]
    assert (bundle.service, bundle.resource, bundle.polling, bundle.persist, bundle.signed) == (
        "s",
        "bundles/pyagent/wasm",
        Polling(60, 120, None),
        False,
        False,
    )
    assert bundle.size_limit_bytes == 64 * 1024 * 1024
    assert (
        config.tables.decision_logs is not None
        and config.tables.decision_logs.upload_size_limit_bytes == 32768
    )
    settings = agent_settings(config)
    assert settings.state_dir_for(None) == Path("/srv/pyagent")
    assert settings.spool_for(None, None) == Path("/srv/pyagent/spool.sqlite")
    assert settings.spool_for(None, "/flag") == Path("/flag/spool.sqlite")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[services.s]\nurl = 'http://x'\nretries = 3\n",
            "{file}: unknown key services.s.retries; known: allow_insecure_tls, credentials, headers, name, "
            "response_header_timeout_seconds, tls, type, url",
        ),
        (
            "[bundles.b]\npolling.min_delay = 3\n",
            "{file}: unknown key bundles.b.polling.min_delay; known: long_polling_timeout_seconds, "
            "max_delay_seconds, min_delay_seconds, superseded_etag_ttl_seconds",
        ),
        (
            "[decision_logs]\nreporting.batch_size = 1\n",
            "{file}: unknown key decision_logs.reporting.batch_size; known: buffer_size_limit_bytes, "
            "buffer_size_limit_events, buffer_type, max_decisions_per_second, max_delay_seconds, "
            "min_delay_seconds, trigger, upload_size_limit_bytes",
        ),
        (
            "[plugin.x]\n",
            "{file}: unknown section [plugin]; known: agent, bundle, bundles, caching, decision_logs, "
            "default_authorization_decision, default_decision, device, discovery, distributed_tracing, "
            "keys, labels, metrics_export, nd_builtin_cache, opa, persistence_directory, plugins, server, "
            "services, status, storage",
        ),
        (  # inside a table the agent ignores, a key OPA does not know is still an error
            "[server]\nencodings = 1\n",
            "{file}: unknown key server.encodings; known: decoding, encoding, logger_plugin, metrics",
        ),
        (
            "[services.s]\nurl = 'http://x'\ncredentials.bearer.token = 'abc'\n",
            "services.s.credentials.bearer.token in {file}: secrets are not kept in the config; "
            "put the token in a file and set services.s.credentials.bearer.token_path",
        ),
        (
            "[services.s]\nurl = 'http://x'\n[bundles.b]\nservice = 'nope'\n",
            "bundles.b.service in {file}: no service 'nope' (services: s)",
        ),
        (
            "[services.s]\nurl = 'http://x'\n[bundles.b]\nsigning.keyid = 'k'\n",
            "bundles.b.signing.keyid in {file}: no key 'k' (keys: none)",
        ),
        (
            "[services.s]\nurl = 'oci://x'\n",
            "services.s.url in {file}: 'oci://x' is not an http:// or https:// URL",
        ),
        (
            "[services.s]\nurl = 'http://x'\ntype = 's3'\n",
            'services.s.type in {file} must be "oci" (an OCI registry) or absent (an HTTP service), '
            "got 's3'",
        ),
        (
            "[services.s]\nurl = 'http://x'\n[bundles.b]\npolling.min_delay_seconds = 9\n"
            "polling.max_delay_seconds = 1\n",
            "bundles.b.polling.max_delay_seconds in {file} must be at least min_delay_seconds (9), got 1",
        ),
        (
            "[services.s]\nurl = 'http://x'\n[bundles.b]\npolling.max_delay_seconds = 1\n",
            "bundles.b.polling.max_delay_seconds in {file} is given without min_delay_seconds: give both "
            "(as OPA)",
        ),
        (
            "[services.s]\nurl = 'http://x'\n[decision_logs]\nreporting.min_delay_seconds = 1\n",
            "decision_logs.reporting.min_delay_seconds in {file} is given without max_delay_seconds: give "
            "both (as OPA)",
        ),
        (
            "[keys.k]\nprivate_key = 'x'\n",
            "keys.k.private_key in {file}: agents verify bundles and never hold a signing key",
        ),
        (  # without a [bundles] table too: it was taken, unused, with its secret on the device
            "[keys.k]\nalgorithm = 'HS256'\nkey = 'shared-secret'\n",
            "keys.k.algorithm in {file}: 'HS256' refused: HMAC would put a signing secret on every device; "
            "use a public-key algorithm (RS256, ES256, ...)",
        ),
        (
            "[labels]\nid = 'x'\n",
            "labels.id in {file}: set by the agent (id: the device id, version: pyagent's)",
        ),
        ("[agent]\nstate_dir = ''\n", "agent.state_dir in {file} must be a non-empty string, got ''"),
        (  # taken as written, it was a folder named "~" in the working directory ("/~" under systemd)
            "[agent]\nstate_dir = '~/state'\n",
            "agent.state_dir in {file} must be a full path: '~' is not expanded (no shell reads this file), "
            "got '~/state'",
        ),
        (
            "[agent]\nlog_path = '$HOME/log.jsonl'\n",
            "agent.log_path in {file} must be a full path: $HOME is not expanded (write ${{HOME}}: the "
            "config takes that form from the environment), got '$HOME/log.jsonl'",
        ),
        (
            "[agent]\nspool_path = '${{PYAGENT_TEST_NEVER_SET}}/spool.sqlite'\n",
            "agent.spool_path in {file} must be a full path: ${{PYAGENT_TEST_NEVER_SET}} is not set in the "
            "environment, got '${{PYAGENT_TEST_NEVER_SET}}/spool.sqlite'",
        ),
    ],
)
def test_config_errors_name_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text.replace("{{", "{").replace("}}", "}"))
    with pytest.raises(InvalidInputError) as raised:
        agent_settings(load_config(path))
    assert str(raised.value) == message.format(file=path)


def test_a_yaml_error_and_an_unknown_yaml_key_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("services: [\n")
    with pytest.raises(
        InvalidInputError, match=r"config.yaml:2: config is not valid YAML: expected the node"
    ) as raised:
        load_config(path)
    assert "\n" not in str(raised.value)
    path.write_text("default_decisions: /x\n")
    with pytest.raises(InvalidInputError, match=r"unknown section \[default_decisions\]; known: agent,"):
        load_config(path)


def test_the_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        assert default_state_dir() == Path("/var/lib/pyagent")
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "pyagent"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "pyagent"


def test_every_command_has_the_agents_default_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """check's bundle serials and the server's SQLite file live where the agent's state does."""
    from pyagent.bundles.state import default_state_dir as bundles_state_dir
    from pyagent.server.store.engine import resolve_url

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PYAGENT_STATE_DIR", raising=False)
    monkeypatch.delenv("PYAGENT_SERVER_DB", raising=False)
    assert bundles_state_dir() == default_state_dir() == tmp_path / "xdg" / "pyagent"
    assert resolve_url(None, None) == f"sqlite:///{tmp_path / 'xdg' / 'pyagent' / 'server.db'}"
    monkeypatch.setenv("PYAGENT_STATE_DIR", str(tmp_path / "given"))
    assert bundles_state_dir() == tmp_path / "given"


def test_a_shared_or_linked_state_dir_or_spool_is_refused(tmp_path: Path) -> None:
    made = private_dir(tmp_path / "a" / "state")
    assert made.is_dir() and (made.stat().st_mode & 0o777) == 0o700
    (tmp_path / "link").symlink_to(made)
    with pytest.raises(InvalidInputError, match="the state directory is a symbolic link"):
        private_dir(tmp_path / "link")
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    shared.chmod(0o775)
    with pytest.raises(InvalidInputError, match=r"writable by group or others \(mode 0775\); chmod go-w"):
        private_dir(shared)
    spool = made / "spool.sqlite"
    spool.write_bytes(b"")
    spool.chmod(0o666)
    with pytest.raises(InvalidInputError, match="the spool is writable by group or others"):
        private_file(spool, what="spool")
    spool.unlink()
    spool.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidInputError, match="the spool is a symbolic link"):
        private_file(spool, what="spool")


def test_agent_run_refuses_an_unsafe_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    state.chmod(0o777)
    config = tmp_path / "agent.toml"
    config.write_text(f'[device]\nid = "x"\n[agent]\nstate_dir = "{state}"\n')
    done = run_pyagent("agent", "run", "--once", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr == (
        f"pyagent: error: {state}: the state directory is writable by group or others (mode 0777); "
        f"chmod go-w {state}\n"
    )


def test_a_bad_opa_url_in_the_config_is_told_as_the_configs_before_any_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[device]\nid = "x"\nownership = "corporate"\nmdm_enrolled = true\norganization = "eu-commission"\n'
        f'[agent]\nstate_dir = "{state}"\n[opa]\nurl = "ftp://x"\n'
    )
    done = run_pyagent("agent", "run", "--once", "--config", str(config))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"pyagent: error: opa.url in {config}: 'ftp://x' is not an http(s)://host[:port] or unix:///path "
        "URL\n"
    )
    assert not (state / "spool.sqlite").exists()  # no run recorded as "invalid"


def test_agent_run_once_without_config_or_facts_is_a_usage_error(tmp_path: Path) -> None:
    done = run_pyagent("agent", "run", "--once", "--state-dir", str(tmp_path / "s"))
    assert done.returncode == 2 and done.stdout == ""
    assert "no agent config (give --config FILE, or create /etc/pyagent/agent.toml)" in done.stderr
    assert (
        "give --device-id ID, --ownership corporate|personal, --mdm-enrolled/--no-mdm-enrolled, --org ORG"
        in (done.stderr)
    )
    assert done.stderr.count("\n") == 1


def test_agent_status_shows_nothing_yet_as_json(tmp_path: Path) -> None:
    done = run_pyagent("agent", "status", "--state-dir", str(tmp_path), "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert (document["exists"], document["bundles"], document["set_aside"]) == (
        False,
        [],
        {"count": 0, "records": []},
    )


def test_a_config_named_by_pyagent_config_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As --config: a missing file is an error, not an empty config (its signing and uploads would be
    silently absent); only the default location may be missing."""
    missing = tmp_path / "agent.toml"
    monkeypatch.setenv("PYAGENT_CONFIG", str(missing))
    with pytest.raises(
        InvalidInputError, match=f"^{re.escape(str(missing))}: config file not found \\(PYAGENT_CONFIG\\)$"
    ):
        load_config()
    with pytest.raises(InvalidInputError, match=f"^{re.escape(str(missing))}: config file not found$"):
        load_config(missing)


def test_a_secret_open_to_every_user_is_said_once_per_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token or key file other users may read or write is said on stderr (and still used), once per file
    and mode; the documented ``0640 root:pyagent`` (a group) and ``0600`` are not said."""
    from pyagent.config.files import read_secret

    token = tmp_path / "agent.token"
    token.write_text("s3cret\n")
    token.chmod(0o644)
    assert read_secret(token, what="token of service s") == "s3cret"
    assert read_secret(token, what="token of service s") == "s3cret"
    assert capsys.readouterr().err == (
        f"pyagent: warning: {token}: token of service s is open to every user on this machine (mode 0644); "
        "take the other users' access away (chmod o-rwx)\n"
    )
    link = tmp_path / "link.token"
    link.symlink_to(token)
    assert read_secret(link, what="token of service s") == "s3cret"  # the same file, named otherwise
    assert capsys.readouterr().err == ""
    token.chmod(0o602)
    assert read_secret(token, what="token of service s") == "s3cret"
    assert read_secret(link, what="token of service s") == "s3cret"
    assert capsys.readouterr().err.count("(mode 0602)") == 1
    for private in (0o640, 0o600, 0o400, 0o601):  # others' execute bit alone opens nothing
        token.chmod(private)
        assert read_secret(token, what="token of service s") == "s3cret"
    assert capsys.readouterr().err == ""


def test_a_secret_with_a_control_character_is_refused(tmp_path: Path) -> None:
    from pyagent.config.files import read_secret

    key = tmp_path / "hmac.key"
    key.write_text("k3y\x07bell\n")
    key.chmod(0o600)
    with pytest.raises(InvalidInputError) as refused:
        read_secret(key, what="decision log key (agent.hmac_key_file)")
    assert str(refused.value) == f"{key}: decision log key (agent.hmac_key_file) holds a control character"


def test_a_missing_token_file_is_the_configs_mistake_before_any_run(tmp_path: Path) -> None:
    """Read at start (and again for every request, as OPA does, so that a rotated token is used): a
    token file that is not there is exit 2 naming it, not a run recorded without a policy (exit 3)."""
    state, missing = tmp_path / "state", tmp_path / "missing.token"
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[device]\nid = "x"\nownership = "corporate"\nmdm_enrolled = true\norganization = "eu-commission"\n'
        f'[agent]\nstate_dir = "{state}"\n[services.s]\nurl = "http://127.0.0.1:9"\n'
        f'credentials.bearer.token_path = "{missing}"\n'
        '[bundles.b]\nservice = "s"\nresource = "bundles/b/wasm"\n'
    )
    done = run_pyagent("agent", "run", "--once", "--config", str(config))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"pyagent: error: services.s.credentials.bearer.token_path in {config}: {missing}: token of service "
        "s not found\n"
    )
    assert not (state / "spool.sqlite").exists()
    shown = run_pyagent("agent", "status", "--config", str(config))  # still tells what there is
    assert shown.returncode == 0, shown.stderr


@pytest.mark.parametrize(
    ("key_line", "problem"),
    [
        ('key_path = "{absent}"', "{absent}: verification key not found"),
        ('key_path = "{pem}"\nalgorithm = "XX999"',
         "verification key {pem}: algorithm 'XX999' refused: use one of RS256, RS384, RS512, PS256, PS384, "
         "PS512, ES256, ES384, ES512"),
    ],
    ids=["missing-file", "unknown-algorithm"],
)  # fmt: skip
def test_a_key_that_does_not_load_is_named_by_its_table_and_file(
    tmp_path: Path, key_line: str, problem: str
) -> None:
    """It was the key file alone (or, for an unknown algorithm, a word about HMAC it is not)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = tmp_path / "public.pem"
    pem.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    names = {"absent": tmp_path / "absent.pem", "pem": pem}
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[device]\nid = "x"\nownership = "corporate"\nmdm_enrolled = true\norganization = "eu-commission"\n'
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[services.s]\nurl = "http://127.0.0.1:9"\n'
        '[bundles.b]\nservice = "s"\nresource = "bundles/b/wasm"\nsigning.keyid = "signer"\n'
        f"[keys.signer]\n{key_line.format(**names)}\n"
    )
    done = run_pyagent("agent", "run", "--once", "--config", str(config))
    assert (done.returncode, done.stderr) == (
        2, f"pyagent: error: keys.signer in {config}: {problem.format(**names)}\n"
    )  # fmt: skip
