"""OPA's config file as the pinned OPA reads it (``internal/config``, ``internal/yaml``, the plugins'
``Validate``): environment variables, YAML 1.2 scalars, partitions, and the values OPA reads otherwise
than a first guess would."""

from __future__ import annotations

import ssl
import textwrap
from email.message import Message
from pathlib import Path

import pytest

from pyagent.agent.plugins.bundle import MAX_DOWNLOAD_SECONDS, download_deadline
from pyagent.bounded_http.tls import tls_context
from pyagent.config.agent import load_config
from pyagent.config.opa import DEFAULT_BUNDLE_SIZE_LIMIT
from pyagent.errors import InvalidInputError
from tests.helpers.tls import make_ca

SERVICE = "services:\n  s: {url: 'http://127.0.0.1:1'}\n"


def _config(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_environment_variables_are_substituted_as_opa_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``${NAME}`` is replaced in the file's text; unset is kept as written (and said), set to "" is ""."""
    monkeypatch.setenv("PYAGENT_TEST_PORT", "8282")
    monkeypatch.setenv("PYAGENT_TEST_REGION", "eu-west")
    monkeypatch.setenv("PYAGENT_TEST_EMPTY", "")
    monkeypatch.delenv("PYAGENT_TEST_UNSET", raising=False)
    path = _config(
        tmp_path,
        """\
        services:
          s: {url: "http://127.0.0.1:${PYAGENT_TEST_PORT}"}
        bundles:
          pyagent: {resource: "bundles/${PYAGENT_TEST_REGION}/wasm"}
        labels:
          region: "${PYAGENT_TEST_REGION}"
          team: "a${PYAGENT_TEST_EMPTY}b"
          x: "${PYAGENT_TEST_UNSET}"
        """,
    )
    tables = load_config(path).tables
    assert tables.services["s"].url == "http://127.0.0.1:8282"
    assert tables.bundles["pyagent"].resource == "bundles/eu-west/wasm"
    assert tables.labels == {"region": "eu-west", "team": "ab", "x": "${PYAGENT_TEST_UNSET}"}
    assert capsys.readouterr().err == (
        f"pyagent: note: {path}: ${{PYAGENT_TEST_UNSET}} is not set in the environment; kept as written "
        "(as OPA does)\n"
    )


def test_agent_toml_substitutes_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYAGENT_TEST_HOST", "pyagent.internal")
    path = _config(tmp_path, '[services.s]\nurl = "https://${PYAGENT_TEST_HOST}:8282"\n', "agent.toml")
    assert load_config(path).tables.services["s"].url == "https://pyagent.internal:8282"


def test_yaml_scalars_resolve_as_opa_reads_them(tmp_path: Path) -> None:
    """YAML 1.2 core: ``NO``, ``on``, ``yes`` and dates are strings (PyYAML alone made them booleans
    and dates, and uploaded the label ``"True": "duty"``); only the first document counts."""
    path = _config(
        tmp_path,
        SERVICE + "labels: {country: NO, on: duty, since: 2023-03-15, shift: '1:30', ok: yes}\n---\nx: 1\n",
    )
    assert load_config(path).tables.labels == {
        "country": "NO",
        "on": "duty",
        "since": "2023-03-15",
        "shift": "1:30",
        "ok": "yes",
    }


def test_a_label_with_no_value_is_empty_as_opa_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``team:`` with nothing after it, or a ``${VAR}`` set to "": OPA starts and reports ``""``
    (the agent refused the config, exit 2)."""
    monkeypatch.setenv("PYAGENT_TEST_EMPTY", "")
    path = _config(tmp_path, SERVICE + "labels:\n  team:\n  shift: ~\n  unit: ${PYAGENT_TEST_EMPTY}\n")
    assert load_config(path).tables.labels == {"team": "", "shift": "", "unit": ""}


def test_yes_is_not_a_boolean(tmp_path: Path) -> None:
    path = _config(tmp_path, SERVICE + "bundles:\n  b: {persist: yes}\n")
    with pytest.raises(InvalidInputError) as raised:
        load_config(path)
    assert str(raised.value) == f"bundles.b.persist in {path} must be true or false, got 'yes'"


def test_partition_names_route_logs_and_status_as_opa_does(tmp_path: Path) -> None:
    """OPA posts to ``/logs/PARTITION`` (which wins over ``resource``) and ``/status/PARTITION``."""
    path = _config(
        tmp_path,
        SERVICE + "decision_logs: {partition_name: eu-west, resource: other}\n"
        "status: {partition_name: eu-west}\n",
    )
    tables = load_config(path).tables
    assert tables.decision_logs is not None
    assert (tables.decision_logs.resource, tables.status_resource) == ("/logs/eu-west", "/status/eu-west")
    plain = load_config(_config(tmp_path, SERVICE + "decision_logs: {}\nstatus: {}\n", "plain.yaml")).tables
    assert plain.decision_logs is not None
    assert (plain.decision_logs.resource, plain.status_resource) == ("/logs", "/status")


def test_the_status_plugin_posts_to_its_partition(tmp_path: Path) -> None:
    from pyagent.agent.http import ServiceClient
    from pyagent.agent.plugins.status import StatusPlugin
    from pyagent.config.opa import Service
    from tests.helpers.fault_server import Fault, fault_server

    seen: list[Message] = []
    paths: list[str] = []
    with fault_server(Fault(status=204, body=b""), seen=seen, paths=paths) as url:
        plugin = StatusPlugin(
            ServiceClient(Service("s", url)), {}, lambda: "dev-1", bundles=[], logs=None,
            resource="/status/eu-west",
        )  # fmt: skip
        plugin.step()
    assert (paths, plugin.state.last_error) == (["/status/eu-west"], None)


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            SERVICE + "discovery: {resource: discovery.tar.gz, decision: discovery}\n",
            "discovery in {file}: not supported by the agent: OPA would take its bundles, decision log and "
            "status settings from the discovery bundle; the agent does not, and would decide on a policy the "
            "discovery service never named (configure bundles, decision_logs and status directly)",
        ),
        (
            SERVICE + "status: {partition_name: eu/west}\n",
            "status.partition_name in {file} must be one URL path segment (letters, digits, . _ ~ -), got "
            "'eu/west'",
        ),
        (
            SERVICE + "bundles:\n  b: {resource: 'file:///var/lib/bundle.tar.gz'}\n",
            "bundles.b.resource in {file}: 'file:///var/lib/bundle.tar.gz' is a local file, which OPA reads "
            "from its disk; the agent downloads its bundles from a service (for a local policy, give check "
            "--policy DIR or PYAGENT_BUNDLE instead)",
        ),
        (
            SERVICE + "bundles:\n  - {name: b, service: s}\n",
            "bundles in {file} must be a table of named tables (OPA takes no list here)",
        ),
        (
            SERVICE + "keys:\n  - {name: k, key: x}\n",
            "keys in {file} must be a table of named tables (OPA takes no list here)",
        ),
        (
            SERVICE + "bundles:\n  b: {size_limit_bytes: 100}\n",
            "bundles.b.size_limit_bytes in {file} must be 0 (the default) or at least 1024, got 100",
        ),
        (
            SERVICE + "bundles:\n  b: {polling: {min_delay_seconds: 300}}\n",
            "bundles.b.polling.min_delay_seconds in {file} is given without max_delay_seconds: give both "
            "(as OPA)",
        ),
        (
            "services:\n  s: {url: 'http://127.0.0.1:1', response_header_timeout_seconds: 1.0e+300}\n",
            "services.s.response_header_timeout_seconds in {file} must be at most 86400, got 1e+300",
        ),
        ("services:\n  s: {url: 'http://[::1'}\n",
         "services.s.url in {file}: 'http://[::1' is not a valid URL (Invalid IPv6 URL)"),
        ("services:\n  s: {url: 'http://exa mple.com'}\n",
         "services.s.url in {file}: 'http://exa mple.com' has a space or control character "
         "(percent-encode it)"),
        (
            "services:\n  s: {url: 'http://x', credentials: {bearer: {token_path: /t, scheme: 'A B'}}}\n",
            "services.s.credentials.bearer.scheme in {file} must be one word (an authentication scheme "
            "such as Bearer), got 'A B'",
        ),
    ],
)  # fmt: skip
def test_what_opa_refuses_or_reads_otherwise_is_a_one_line_error(
    tmp_path: Path, yaml: str, message: str
) -> None:
    path = _config(tmp_path, yaml)
    with pytest.raises(InvalidInputError) as raised:
        load_config(path)
    assert str(raised.value) == message.format(file=path)


def test_values_read_as_opa_reads_them(tmp_path: Path) -> None:
    """An empty scheme is Bearer, ``size_limit_bytes: 0`` the default, the resource's slashes trimmed
    at both ends (OPA: ``strings.Trim``)."""
    path = _config(
        tmp_path,
        """\
        services:
          s: {url: 'http://127.0.0.1:1', credentials: {bearer: {token_path: /t, scheme: ''}}}
        bundles:
          b: {resource: /bundles/pyagent/wasm/, size_limit_bytes: 0}
        """,
    )
    tables = load_config(path).tables
    assert tables.services["s"].scheme == "Bearer"
    assert (tables.bundles["b"].resource, tables.bundles["b"].size_limit_bytes) == (
        "bundles/pyagent/wasm",
        DEFAULT_BUNDLE_SIZE_LIMIT,
    )


def test_system_ca_required_trusts_the_system_s_cas_besides_ca_cert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own, _ = make_ca(tmp_path, "fleet CA")
    system, _ = make_ca(tmp_path, "system CA")
    monkeypatch.setenv("SSL_CERT_FILE", str(system))  # the system's store, as OpenSSL finds it
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-such-dir"))
    path = _config(
        tmp_path, f"services:\n  s: {{url: 'https://x', tls: {{ca_cert: {own}, system_ca_required: true}}}}\n"
    )
    service = load_config(path).tables.services["s"]
    assert service.system_ca is True

    def subjects(context: ssl.SSLContext) -> list[str]:
        return sorted(
            dict(item[0] for item in cert["subject"])["commonName"] for cert in context.get_ca_certs()
        )

    assert subjects(tls_context(own, what="x", system_too=True)) == ["fleet CA", "system CA"]
    assert subjects(tls_context(own, what="x")) == ["fleet CA"]


def test_a_huge_size_limit_bounds_a_download_by_a_day() -> None:
    """OPA takes any int64 ``size_limit_bytes``: the download deadline (which grows with it) stays a
    day at most (it overflowed the clock: ``OverflowError: timestamp out of range``)."""
    assert download_deadline(10, None, 10**17) == MAX_DOWNLOAD_SECONDS


def test_an_empty_partition_is_unset_and_a_resource_is_trimmed_at_both_ends(tmp_path: Path) -> None:
    from pyagent.agent.http import ServiceClient
    from pyagent.config.opa import Service

    path = _config(tmp_path, SERVICE + "decision_logs: {partition_name: '', resource: /custom/logs/}\n")
    logs = load_config(path).tables.decision_logs
    assert logs is not None
    client = ServiceClient(Service("s", "http://127.0.0.1:1/root"))
    assert (logs.resource, client.path(logs.resource)) == ("/custom/logs/", "/root/custom/logs")
    assert client.path("") == "/root"  # the URL itself (agent.collector_url)
    assert client.url("logs") == "http://127.0.0.1:1/root/logs"  # (it said /root/root/logs)
