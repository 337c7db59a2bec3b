"""A real OPA ``config.yaml`` given to the agent: the pinned ``opa run --server`` takes it without a
warning and so does the agent, which says once per key what it ignores; a key OPA does not know is
refused naming the key and the file (exit 2), and OPA warns about it too; keys that would weaken the
agent if ignored are refused with the reason."""

from __future__ import annotations

import json
import textwrap
from email.message import Message
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pyagent.agent.http import ServiceClient
from pyagent.config.agent import load_config
from pyagent.config.opa import Service
from pyagent.errors import InvalidInputError
from tests.agent.conftest import REPO, run_pyagent
from tests.helpers.fault_server import Fault, fault_server
from tests.helpers.opa_bin import opa_binary
from tests.helpers.opa_server import free_port, run_opa_server

FLEET_CONFIG = """\
services:
  pyagent:
    url: http://127.0.0.1:{port}
    credentials:
      bearer: {{token_path: {token}, scheme: Bearer}}
    headers: {{X-Fleet: eu-west}}
    allow_insecure_tls: false
    response_header_timeout_seconds: 20
bundles:
  pyagent:
    service: pyagent
    resource: bundles/pyagent/wasm
    persist: true
    size_limit_bytes: 8388608
    trigger: periodic
    polling: {{min_delay_seconds: 10, max_delay_seconds: 20, long_polling_timeout_seconds: 60}}
    signing: {{keyid: signer, exclude_files: []}}
keys:
  signer:
    algorithm: RS256
    scope: eu-fleet
    key: |
{key}
decision_logs:
  service: pyagent
  reporting:
    min_delay_seconds: 5
    max_delay_seconds: 10
    upload_size_limit_bytes: 65536
    buffer_size_limit_bytes: 1048576
  console: true
status: {{service: pyagent, console: true, prometheus: true}}
labels: {{region: eu-west, team: platform}}
default_decision: /pyagent/decision
persistence_directory: {state}
server:
  encoding: {{gzip: {{min_length: 1024, compression_level: 9}}}}
caching:
  inter_query_builtin_cache: {{max_size_bytes: 10000000}}
nd_builtin_cache: true
"""

SERVICE = "services:\n  s: {url: 'http://127.0.0.1:1'}\n"
IGNORED = (
    "bundles.pyagent.trigger",
    "decision_logs.reporting.buffer_size_limit_bytes",
    "decision_logs.console",
    "status.console",
    "status.prometheus",
    "default_decision",
    "persistence_directory",
    "server",
    "caching",
    "nd_builtin_cache",
)


def _ignored_lines(path: Path, keys: tuple[str, ...] = IGNORED) -> str:
    return "".join(
        f"pyagent: {path}: {key} is an OPA setting the agent does not use; ignored\n" for key in keys
    )


@pytest.fixture(scope="module")
def signer_public_pem() -> str:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode("ascii")


@pytest.fixture
def fleet_config(tmp_path: Path, signer_public_pem: str) -> Path:
    """The config.yaml a platform team gives its OPAs, with a token file and a state directory."""
    token = tmp_path / "agent.token"
    token.write_text("agent-token\n")
    token.chmod(0o600)
    state = tmp_path / "opa-state"
    state.mkdir()
    path = tmp_path / "config.yaml"
    key = textwrap.indent(signer_public_pem, " " * 6).rstrip("\n")
    path.write_text(FLEET_CONFIG.format(port=free_port(), token=token, key=key, state=state))
    return path


def _opa_warnings(config: Path, workdir: Path) -> list[str]:
    """The warnings the pinned ``opa run --server -c CONFIG`` logs while it comes up healthy."""
    with run_opa_server(
        opa_binary(), workdir, paths=(), extra_args=("-c", str(config), "--log-level", "info")
    ) as opa:
        log = opa.log
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    warnings = [line["msg"] for line in lines if line.get("level") == "warning"]
    return [msg for msg in warnings if "uid or gid 0" not in msg]  # a warning about the test's user


def test_opa_and_the_agent_both_take_a_fleet_config_yaml(fleet_config: Path, tmp_path: Path) -> None:
    assert _opa_warnings(fleet_config, tmp_path) == []
    done = run_pyagent(
        "agent",
        "status",
        "--format",
        "json",
        "--config",
        str(fleet_config),
        "--state-dir",
        str(tmp_path / "s"),
    )
    assert (done.returncode, done.stderr) == (0, _ignored_lines(fleet_config))
    assert json.loads(done.stdout)["bundles"] == []


def test_what_the_agent_reads_from_it_and_each_ignored_key_reported_once(
    fleet_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = load_config(fleet_config).tables
    assert capsys.readouterr().err == _ignored_lines(fleet_config)
    load_config(fleet_config)
    assert capsys.readouterr().err == ""
    bundle = tables.bundles["pyagent"]
    assert (bundle.keyid, bundle.scope, bundle.signed, bundle.persist, bundle.size_limit_bytes) == (
        "signer",
        "eu-fleet",  # keys.signer.scope, as OPA: the bundle names no scope of its own
        True,
        True,
        8388608,
    )
    assert (tables.services["pyagent"].timeout, tables.labels) == (
        20,
        {"region": "eu-west", "team": "platform"},
    )
    assert tables.services["pyagent"].headers == (("X-Fleet", "eu-west"),)
    logs = tables.decision_logs
    assert logs is not None and (logs.service, logs.upload_size_limit_bytes) == ("pyagent", 65536)
    assert tables.status_service == "pyagent"


def test_a_key_opa_does_not_know_is_refused_by_both(fleet_config: Path, tmp_path: Path) -> None:
    text = fleet_config.read_text().replace("    buffer_size_limit_bytes:", "    batch_size_limit_bytes:")
    fleet_config.write_text(text)
    assert _opa_warnings(fleet_config, tmp_path) == [
        'unknown configuration option "decision_logs.reporting.batch_size_limit_bytes" encountered'
    ]
    done = run_pyagent("agent", "status", "--config", str(fleet_config), "--state-dir", str(tmp_path / "s"))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"pyagent: error: {fleet_config}: unknown key decision_logs.reporting.batch_size_limit_bytes; known: "
        "buffer_size_limit_bytes, buffer_size_limit_events, buffer_type, max_decisions_per_second, "
        "max_delay_seconds, min_delay_seconds, trigger, upload_size_limit_bytes\n"
    )


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            SERVICE + "bundles:\n  b:\n    service: s\n    signing: {keyid: k, exclude_files: [data.json]}\n",
            "bundles.b.signing.exclude_files in {file}: not supported by the agent: OPA would evaluate the "
            "excluded files unverified; the agent verifies every file of a bundle (sign the bundle without "
            "exclusions)",
        ),
        (
            "services:\n  s: {url: 'https://x', allow_insecure_tls: true}\n",
            "services.s.allow_insecure_tls in {file}: not supported by the agent: the agent always verifies "
            "TLS certificates (give tls.ca_cert for a private CA)",
        ),
        (
            "services:\n  s: {url: 'https://x', credentials: {oauth2: {token_url: 'https://t'}}}\n",
            "services.s.credentials.oauth2 in {file}: not supported by the agent: the agent authenticates "
            "with credentials.bearer.token_path only; without it, its requests would go unauthenticated",
        ),
        (
            SERVICE + "decision_logs: {service: s, mask_decision: /system/log/mask}\n",
            "decision_logs.mask_decision in {file}: not supported by the agent: the agent cannot apply a "
            "mask policy and would upload the fields it masks (remove it from the agent's copy only if "
            "nothing needs masking)",
        ),
        (
            "bundle: {name: pyagent, service: s}\n",
            "bundle in {file}: not supported by the agent: OPA's deprecated single-bundle table; write it as "
            "bundles.NAME",
        ),
    ],
)
def test_keys_unsafe_to_ignore_are_refused_with_the_reason(tmp_path: Path, yaml: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("keys:\n  k: {key: x}\n" + yaml)
    with pytest.raises(InvalidInputError) as raised:
        load_config(path)
    assert str(raised.value) == message.format(file=path)


def test_console_only_decision_logs_and_status_are_not_uploaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        SERVICE
        + "decision_logs: {console: true, reporting: {min_delay_seconds: 1}}\nstatus: {prometheus: true}\n"
    )
    tables = load_config(path).tables
    assert (tables.decision_logs, tables.status_service) == (None, None)
    assert capsys.readouterr().err == _ignored_lines(path, ("decision_logs", "status"))


def test_the_deploy_example_is_read_with_its_ignored_keys_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text((REPO / "deploy" / "systemd" / "config.yaml.example").read_text())
    tables = load_config(path).tables
    ignored = (
        "decision_logs.console",
        "status.prometheus",
        "default_decision",
        "persistence_directory",
        "server",
    )
    assert capsys.readouterr().err == _ignored_lines(path, ignored)
    bundle = tables.bundles["pyagent"]
    assert (bundle.resource, bundle.keyid, bundle.scope, tables.keys["bundle-signer"].algorithm) == (
        "bundles/pyagent/wasm",  # OPA, with no resource either, asks for bundles/pyagent
        "bundle-signer",
        "eu-fleet",
        "RS256",
    )


def test_service_headers_go_with_every_request_and_a_request_s_own_win(tmp_path: Path) -> None:
    token = tmp_path / "agent.token"
    token.write_text("agent-token\n")
    seen: list[Message] = []
    with fault_server(Fault(status=204, body=b""), seen=seen) as url:
        service = Service(
            "s", url, token_path=token, headers=(("X-Fleet", "eu-west"), ("user-agent", "fleet/1"))
        )
        client = ServiceClient(service)
        client.request("GET", "bundles/b", timeout=5, max_body=1024)
        client.request("POST", "logs", timeout=5, max_body=1024, headers={"x-fleet": "other"}, body=b"[]")
    assert [(h["X-Fleet"], h["User-Agent"], h["Authorization"]) for h in seen] == [
        ("eu-west", "fleet/1", "Bearer agent-token"),
        ("other", "fleet/1", "Bearer agent-token"),
    ]
    assert [len(h.get_all("X-Fleet") or []) for h in seen] == [1, 1]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ("{Authorization: 'Bearer x'}", "services.s.headers.Authorization in {file}: secrets are not kept in "
         "the config; put the token in a file and set services.s.credentials.bearer.token_path"),
        ("{Host: evil.example}", "services.s.headers.Host in {file}: the agent's HTTP client sets this "
         "header itself"),
        ("{'X Fleet': a}", "services.s.headers in {file}: 'X Fleet' is not a header name"),
        ("{X-Fleet: \"a\\r\\nX-Admin: 1\"}", "services.s.headers.X-Fleet in {file} must be visible ASCII "
         "characters and spaces, got 'a\\r\\nX-Admin: 1'"),
        ("{X-Fleet: 7}", "services.s.headers.X-Fleet in {file} must be visible ASCII characters and spaces, "
         "got 7"),
        ("[X-Fleet]", "services.s.headers in {file} must be a table of header names and values"),
    ],
)  # fmt: skip
def test_service_headers_that_could_not_be_sent_as_written_are_refused(
    tmp_path: Path, headers: str, message: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"services:\n  s: {{url: 'http://127.0.0.1:1', headers: {headers}}}\n")
    with pytest.raises(InvalidInputError) as raised:
        load_config(path)
    assert str(raised.value) == message.format(file=path)


def test_a_server_echoing_the_token_gets_it_redacted_in_what_is_kept(tmp_path: Path) -> None:
    """A reply's message goes into agent status, status uploads and the spool: the token it echoes
    (with or without its scheme) never does."""
    token = tmp_path / "agent.token"
    token.write_text("s3cret-agent-token-0042\n")
    echo = b'{"message": "who is s3cret-agent-token-0042? (Authorization: Bearer s3cret-agent-token-0042)"}'
    with fault_server(Fault(status=401, body=echo)) as url:
        reply = ServiceClient(Service("s", url, token_path=token)).request(
            "GET", "bundles/b", timeout=5, max_body=1024
        )
    assert reply.message() == "HTTP 401: who is ***? (Authorization: Bearer ***)"


def test_a_long_token_echoed_is_redacted_whole_before_the_message_is_cut(tmp_path: Path) -> None:
    """A JWT of 400 characters: cut to 300 first, its first part no longer matched and was kept."""
    jwt = "eyJ" + "a" * 397
    token = tmp_path / "agent.token"
    token.write_text(jwt + "\n")
    echo = json.dumps({"message": f"expired: {jwt}"}).encode()
    with fault_server(Fault(status=401, body=echo)) as url:
        client = ServiceClient(Service("s", url, token_path=token))
        reply = client.request("GET", "bundles/b", timeout=5, max_body=4096)
    assert reply.message() == "HTTP 401: expired: ***"


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Windows Notepad writes one; it was "config is not valid TOML: Invalid statement (at line 1,
    column 1)", where a report, a --data file and the policy's YAML with one are read."""
    for name, text in (
        ("agent.toml", "[labels]\nsite = 'brussels'\n"),
        ("config.yaml", "labels:\n  site: brussels\n"),
    ):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
        assert load_config(path).tables.labels == {"site": "brussels"}


def test_a_config_that_is_no_mapping_says_what_it_is(tmp_path: Path) -> None:
    for text, kind in (("- services\n- bundles\n", "a list"), ("fleet\n", "a single value")):
        path = tmp_path / "config.yaml"
        path.write_text(text)
        with pytest.raises(InvalidInputError) as refused:
            load_config(path)
        assert str(refused.value) == f"{path}: config must be a mapping of tables, not {kind}"
