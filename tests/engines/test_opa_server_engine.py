"""The `opa` engine: a real OPA server (plain, and TLS + bearer token behind system.authz), and
fault injection where no decision may come out as allow."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyagent.cli import cli
from pyagent.decide import decide
from pyagent.engines.base import EngineError, EngineSettings
from pyagent.engines.opa_server import parse_url
from pyagent.engines.select import build_engine
from pyagent.errors import InvalidInputError
from tests.helpers import domain
from tests.helpers.fault_server import Fault, fault_server
from tests.helpers.opa_server import POLICY_DIRS, RunningOpa, run_opa_server
from tests.helpers.tls import make_ca, make_pki

CLEAN = domain.make_report("eu-commission", "android", "corporate", True, ["org.example.notes"])
AT = "2023-03-16T09:30:00Z"
TOKEN = secrets.token_urlsafe(24)
REJ = "request rejected by administrative policy"  # OPA's answer when its authz policy says no


@pytest.fixture(scope="module")
def secured_opa(opa_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningOpa, Path]]:
    workdir = tmp_path_factory.mktemp("secured-opa")
    pki = make_pki(workdir)
    tokens = workdir / "tokens" / "data.json"
    tokens.parent.mkdir()
    tokens.write_text(
        json.dumps({"pyagent_server": {"token_sha256s": [hashlib.sha256(TOKEN.encode()).hexdigest()]}})
    )
    with run_opa_server(
        opa_bin,
        workdir,
        paths=[*POLICY_DIRS, tokens],
        extra_args=[
            "--authentication=token",
            "--authorization=basic",
            "--tls-cert-file",
            str(pki.server_cert),
            "--tls-private-key-file",
            str(pki.server_key),
        ],
        tls_ca=pki.ca_cert,
    ) as server:
        yield server, pki.ca_cert


def settings(url: str, **kw: object) -> EngineSettings:
    return EngineSettings(engine="opa", opa_url=url, **kw)  # type: ignore[arg-type]


def test_decision_over_tls_with_token(
    secured_opa: tuple[RunningOpa, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca = secured_opa
    # A system CA bundle in the environment must not replace the configured CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    report = domain.make_report("eu-commission", "android", "corporate", True, ["com.zhiliaoapp.musically"])
    with build_engine(settings(server.url, opa_token=TOKEN, opa_ca=str(ca))) as engine:
        decision = decide(engine, report, at=AT)
    assert [v["rule"] for v in decision["violations"]] == ["eu-commission/tiktok"]
    assert decision["engine"] == "opa"


def test_wrong_token_is_no_decision(secured_opa: tuple[RunningOpa, Path]) -> None:
    server, ca = secured_opa
    with (
        build_engine(settings(server.url, opa_token="guess", opa_ca=str(ca))) as engine,
        pytest.raises(EngineError, match=f"^OPA at {re.escape(server.url)}: HTTP 401 \\({REJ}\\)$"),
    ):
        engine.evaluate({"at": AT, "report": CLEAN})


def test_missing_token_is_no_decision(secured_opa: tuple[RunningOpa, Path]) -> None:
    server, ca = secured_opa
    with (
        build_engine(settings(server.url, opa_ca=str(ca))) as engine,
        pytest.raises(EngineError, match=f"^OPA at {re.escape(server.url)}: HTTP 401 \\({REJ}\\)$"),
    ):
        engine.evaluate({"at": AT, "report": CLEAN})


def test_untrusted_certificate_is_no_decision(secured_opa: tuple[RunningOpa, Path], tmp_path: Path) -> None:
    server, _ = secured_opa
    other_ca, _ = make_ca(tmp_path, "attacker CA")
    with (
        build_engine(settings(server.url, opa_token=TOKEN, opa_ca=str(other_ca))) as engine,
        pytest.raises(EngineError, match="TLS verification failed"),
    ):
        engine.evaluate({"at": AT, "report": CLEAN})


def test_cli_wrong_token_exits_3(secured_opa: tuple[RunningOpa, Path], tmp_path: Path) -> None:
    server, ca = secured_opa
    report = tmp_path / "r.json"
    report.write_text(json.dumps(CLEAN))
    result = CliRunner().invoke(
        cli,
        [
            "check",
            str(report),
            "--at",
            AT,
            "--engine",
            "opa",
            "--opa-url",
            server.url,
            "--opa-token",
            "guess",
            "--opa-ca",
            str(ca),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 3
    assert result.stdout == ""


GAVE_UP = " (gave up after 3 attempts, deadline 10 s)"
#: A well-formed answer about CLEAN at AT (every field the policy echoes).
ANSWER = {
    "device_id": CLEAN["device"]["id"], "organization": "eu-commission", "allow": True, "violations": [],
    "warnings": [], "exempted": [], "errors": [], "evaluated_at": AT, "policy_revision": "any",
}  # fmt: skip
NO_RESULT = "no result for data.pyagent.decision (policy not loaded, or the bundle not yet active)"
NOT_JSON = "malformed response (Expecting value: line 1 column 1 (char 0))"
CUT = "the answer was cut short"


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            Fault(status=500, body=b'{"code": "internal_error", "message": "boom"}'),
            "OPA at {url}: HTTP 500 (boom) (gave up after 3 attempts, deadline 10 s)",
        ),
        (Fault(status=502, body=b"bad gateway"), f"OPA at {{url}}: HTTP 502{GAVE_UP}"),
        (Fault(status=504, body=b""), f"OPA at {{url}}: HTTP 504{GAVE_UP}"),
        (
            Fault(status=400, body=b'{"code": "invalid_parameter", "message": "bad input"}'),
            "OPA at {url}: HTTP 400 (bad input)",
        ),
        (Fault(status=200, body=b"{}"), f"OPA at {{url}}: {NO_RESULT}"),
        (Fault(status=200, body=b'{"result": null}'), "OPA at {url}: malformed result (not a JSON object)"),
        (
            Fault(status=200, body=b'{"result": {"allow": true}}'),
            "opa engine: the policy result has no list of objects 'violations'",
        ),
        (
            Fault(status=200, body=b'{"result": {"allow": "yes"}}'),
            "opa engine: the policy result has no boolean 'allow'",
        ),
        (Fault(status=200, body=b"<html>proxy login</html>"), f"OPA at {{url}}: {NOT_JSON}"),
        (
            Fault(status=200, body=b'{"result": {"allow": tr', declared_length=4096),
            f"OPA at {{url}}: {CUT}{GAVE_UP}",
        ),
        (Fault(status=200, body=b"[1, 2]"), "OPA at {url}: malformed response (not a JSON object)"),
        (Fault(status=200, body=b"\x00\xffl\x00"), "OPA at {url}: malformed response (not UTF-8 JSON)"),
        (Fault(status=200, body=b"{}", delay=2.0), f"OPA at {{url}}: no answer within 0.5 s{GAVE_UP}"),
        (
            Fault(status=200, body=b'{"result": {"allow": false, "violations": [{}], "allow": true}}'),
            "OPA at {url}: malformed response (duplicate key 'allow')",
        ),
        (
            Fault(status=200, body=b'{"result": {"allow": NaN}}'),
            "OPA at {url}: malformed response (NaN is not JSON)",
        ),
        (
            Fault(
                status=200, body=json.dumps({"result": {**ANSWER, "organization": "eu-parliament"}}).encode()
            ),
            "opa engine: the answer is for organisation 'eu-parliament', not 'eu-commission'; refused",
        ),
    ],
    ids=[
        "500",
        "502",
        "504",
        "400",
        "no-result",
        "null-result",
        "partial-result",
        "allow-not-bool",
        "html",
        "truncated",
        "array",
        "binary",
        "slow",
        "duplicate-key",
        "nan",
        "other-organisation",
    ],
)
def test_faults_are_no_decision_never_allow(fault: Fault, message: str, tmp_path: Path) -> None:
    with fault_server(fault) as url:
        with build_engine(settings(url, opa_timeout=0.5)) as engine, pytest.raises(EngineError) as raised:
            decide(engine, CLEAN, at=AT)
        expected = message.format(url=url)
        assert str(raised.value) == expected
        report = tmp_path / "r.json"
        report.write_text(json.dumps(CLEAN))
        result = CliRunner().invoke(
            cli,
            [
                "check",
                str(report),
                "--at",
                AT,
                "--engine",
                "opa",
                "--opa-url",
                url,
                "--opa-timeout",
                "0.5",
                "--format",
                "json",
            ],
        )
    assert (result.exit_code, result.stdout, result.stderr) == (3, "", f"pyagent: error: {expected}\n")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1:8181",
        "127.0.0.1:8181",
        "http://127.0.0.1:8181/v1/data/x",
        "http://127.0.0.1:8181/?q=1",
        "http://:8181",
        "http://127.0.0.1:99999",
    ],
)
def test_bad_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(InvalidInputError, match="--opa-url"):
        parse_url(url)


def test_missing_url_for_opa_engine_is_a_usage_error() -> None:
    with pytest.raises(InvalidInputError, match="--engine opa needs --opa-url"):
        build_engine(EngineSettings(engine="opa"))


def raw_https(secured: tuple[RunningOpa, Path], method: str, path: str, body: bytes) -> tuple[int, bytes]:
    """One request with the agent's valid token, below the engine: what an attacker holding it can do."""
    import http.client
    import ssl

    server, ca = secured
    port = int(server.url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(ca))
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, payload


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/data"),
        ("POST", "/v1/data"),
        ("GET", "/v1/data/pyagent/decision"),
        ("POST", "/v1/data/pyagent/exemptions"),
        ("POST", "/v1/data/pyagent/organizations"),
        ("POST", "/v1/data/pyagent_server/token_sha256s"),
        ("POST", "/v1/data/system/authz"),
        ("POST", "/v1/data/pyagent/decision/../../system/authz"),
        ("POST", "/v1/data/pyagent/decision/%2e%2e/exemptions"),
        ("POST", "/v1/data/pyagent//decision"),
        ("PUT", "/v1/data/pyagent/exemptions/EX-EVIL"),
        ("PUT", "/v1/policies/evil"),
        ("GET", "/v1/policies"),
        ("POST", "/v1/query"),
        ("POST", "/v1/compile"),
        ("GET", "/v1/config"),
        ("GET", "/v1/status"),
    ],
)
def test_valid_token_reaches_nothing_but_the_decision(
    secured_opa: tuple[RunningOpa, Path], method: str, path: str
) -> None:
    """From the attacker's side: a stolen agent token cannot read exemptions, change data or policies."""
    body = json.dumps({"input": {"at": AT, "report": CLEAN}, "query": "data"}).encode()
    status, payload = raw_https(secured_opa, method, path, body)
    assert (status, json.loads(payload)) == (401, {"code": "unauthorized", "message": REJ}), payload[:200]
    assert b"fr-brussels" not in payload and b"token_sha256s" not in payload


def test_valid_token_gets_the_decision_over_raw_https(secured_opa: tuple[RunningOpa, Path]) -> None:
    body = json.dumps({"input": {"at": AT, "report": CLEAN}}).encode()
    status, payload = raw_https(secured_opa, "POST", "/v1/data/pyagent/decision", body)
    assert status == 200
    assert json.loads(payload)["result"]["allow"] is True


def test_ca_for_a_plain_http_url_is_a_usage_error(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not used")
    with pytest.raises(InvalidInputError, match="--opa-ca is for an https:// URL"):
        build_engine(EngineSettings(engine="opa", opa_url="http://127.0.0.1:8181", opa_ca=str(ca)))


def test_an_opa_echoing_its_token_gets_it_redacted_in_the_error() -> None:
    """The error is kept (the spool, its decision-log event): the token an OPA echoes never is."""
    echo = b'{"code": "unauthorized", "message": "who is s3cret-opa-token-7? Bearer s3cret-opa-token-7"}'
    with fault_server(Fault(status=401, body=echo)) as url:
        engine_settings = settings(url, opa_timeout=0.5, opa_token="s3cret-opa-token-7")
        with build_engine(engine_settings) as engine, pytest.raises(EngineError) as raised:
            decide(engine, CLEAN, at=AT)
    assert str(raised.value) == f"OPA at {url}: HTTP 401 (who is ***? Bearer ***)"


VIOLATION = {
    "rule": "eu-commission/tiktok", "ban": "tiktok", "app_id": "com.zhiliaoapp.musically",
    "message": "banned", "remediation": "uninstall it", "effective_from": "2023-03-15T00:00:00Z",
    "scope": "corporate",
}  # fmt: skip
POLICY_ERROR = {"code": "unknown_organization", "message": 'unknown organisation "eu-commission"'}


@pytest.mark.parametrize(
    ("answer", "exit_code"),
    [({**ANSWER, "violations": [VIOLATION]}, 1), ({**ANSWER, "errors": [POLICY_ERROR]}, 2)],
    ids=["with-violations", "with-errors"],
)
def test_an_answer_allowing_despite_its_violations_or_errors_denies(
    answer: dict[str, object], exit_code: int, tmp_path: Path
) -> None:
    """A compromised or broken server's ``allow: true`` beside a violation or an error is no allow."""
    with fault_server(Fault(status=200, body=json.dumps({"result": answer}).encode())) as url:
        with build_engine(settings(url)) as engine:
            decision = decide(engine, CLEAN, at=AT)
        report = tmp_path / "r.json"
        report.write_text(json.dumps(CLEAN))
        args = ["check", str(report), "--at", AT, "--engine", "opa", "--opa-url", url, "--format", "json"]
        result = CliRunner().invoke(cli, args)
    assert decision["allow"] is False
    assert (decision["violations"], decision["errors"]) == (answer["violations"], answer["errors"])
    assert result.exit_code == exit_code
