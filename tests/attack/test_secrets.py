"""Issue 16, item 6: secrets never in messages, credentials in a URL used or refused, never dropped.

``--opa-url https://user:password@host`` is sent as basic auth (a real OPA over TLS whose authz policy
checks it); on plain http it is a usage error (exit 2) before anything is sent. No message, whatever
fails, shows the password, the bearer token, or a token a server echoes back.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyagent.redact import redact
from tests.attack.conftest import run_pyagent
from tests.helpers import domain
from tests.helpers.fault_server import Fault, fault_server
from tests.helpers.opa_server import REPO, RunningOpa, free_port, run_opa_server
from tests.helpers.tls import make_pki

AT = "2023-03-16T09:30:00Z"
USER = "agent"
PASSWORD = "pw-" + secrets.token_urlsafe(18)
BANNED = domain.make_report("eu-commission", "android", "corporate", True, ["com.zhiliaoapp.musically"])

BASIC_AUTHZ = """package system.authz

default allow := false

allow if {
	input.method == "POST"
	input.path == ["v1", "data", "pyagent", "decision"]
	input.headers.Authorization == [concat(" ", ["Basic", data.basic.expected])]
}

allow if input.path == ["health"]
"""


@pytest.fixture(scope="module")
def basic_auth_opa(
    opa_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningOpa, Path]]:
    """A real OPA over TLS that answers the decision only with ``agent:PASSWORD`` as basic auth (its
    authz policy, instead of the shipped token one, compares the Authorization header)."""
    workdir = tmp_path_factory.mktemp("basic-opa")
    pki = make_pki(workdir)
    authz = workdir / "authz"
    authz.mkdir()
    (authz / "authz.rego").write_text(BASIC_AUTHZ)
    expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (authz / "data.json").write_text(json.dumps({"basic": {"expected": expected}}))
    with run_opa_server(
        opa_bin,
        workdir,
        paths=[REPO / "policies" / "rego" / "pyagent", REPO / "policies" / "data", authz],
        extra_args=[
            "--authorization=basic",
            "--tls-cert-file",
            str(pki.server_cert),
            "--tls-private-key-file",
            str(pki.server_key),
        ],
        tls_ca=pki.ca_cert,
    ) as server:
        yield server, pki.ca_cert


def _with_userinfo(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


def test_credentials_in_an_https_url_are_sent_as_basic_auth(
    basic_auth_opa: tuple[RunningOpa, Path], write_report: Any
) -> None:
    server, ca = basic_auth_opa
    url = _with_userinfo(server.url, USER, PASSWORD)
    run = run_pyagent("check", write_report(BANNED), "--at", AT, "--opa-url", url, "--opa-ca", str(ca))
    assert run.code == 1, run.stderr  # the real decision: the credentials were used
    assert "eu-commission/tiktok" in run.stderr
    assert PASSWORD not in run.stderr + run.stdout


def test_a_wrong_password_is_no_decision_and_never_shown(
    basic_auth_opa: tuple[RunningOpa, Path], write_report: Any
) -> None:
    server, ca = basic_auth_opa
    wrong = "wrong-" + secrets.token_urlsafe(12)
    run = run_pyagent(
        "-vv", "check", write_report(BANNED), "--at", AT,
        "--opa-url", _with_userinfo(server.url, USER, wrong), "--opa-ca", str(ca),
    )  # fmt: skip
    assert run.code == 3
    assert run.stderr.strip().splitlines()[-1] == (
        f"pyagent: error: OPA at {server.url}: HTTP 401 (request rejected by administrative policy)"
    )
    assert wrong not in run.stderr + run.stdout


def test_credentials_over_plain_http_are_a_usage_error_before_anything_is_sent(write_report: Any) -> None:
    with fault_server(Fault(status=200, body=b'{"result": {}}')) as url:
        run = run_pyagent(
            "check", write_report(BANNED), "--at", AT, "--opa-url", _with_userinfo(url, USER, PASSWORD)
        )
    assert (run.code, run.stderr.strip()) == (
        2,
        f"pyagent: error: --opa-url: '{url.replace('://', '://***@')}' has credentials, which are sent "
        "(as basic auth) over https only; use an https:// URL, or --opa-token",
    )
    assert run.seconds < 10


def test_credentials_and_a_token_are_a_usage_error(write_report: Any) -> None:
    url = f"https://{USER}:{PASSWORD}@127.0.0.1:{free_port()}"
    run = run_pyagent(
        "check", write_report(BANNED), "--at", AT, "--opa-url", url, "--opa-token", "t0ken-XYZ123"
    )
    assert (run.code, run.stderr.strip()) == (
        2,
        "pyagent: error: --opa-url has credentials and --opa-token is given: give one of them",
    )


@pytest.mark.parametrize(
    "url",
    [f"ftp://{USER}:{PASSWORD}@127.0.0.1:8181", f"https://{USER}:{PASSWORD}@127.0.0.1:8181/v1/data"],
    ids=["bad-scheme", "with-path"],
)
def test_a_bad_url_with_credentials_is_shown_without_them(url: str, write_report: Any) -> None:
    run = run_pyagent("check", write_report(BANNED), "--at", AT, "--engine", "opa", "--opa-url", url)
    assert run.code == 2
    assert PASSWORD not in run.stderr
    assert "***@127.0.0.1:8181" in run.stderr


def test_an_unreachable_server_is_named_without_the_credentials(write_report: Any) -> None:
    port = free_port()
    url = f"https://{USER}:{PASSWORD}@127.0.0.1:{port}"
    run = run_pyagent("check", write_report(BANNED), "--at", AT, "--opa-url", url, "--opa-retries", "0")
    assert run.code == 3
    assert run.stderr.startswith(f"pyagent: error: OPA at https://127.0.0.1:{port}: cannot connect (")
    assert PASSWORD not in run.stderr


def test_a_token_echoed_by_the_server_is_redacted(write_report: Any) -> None:
    token = "tok-" + secrets.token_urlsafe(24)
    echoed = json.dumps({"code": "unauthorized", "message": f"bad credentials: Bearer {token}"}).encode()
    with fault_server(Fault(status=401, body=echoed)) as url:
        run = run_pyagent("check", write_report(BANNED), "--at", AT, "--opa-url", url, "--opa-token", token)
    assert (run.code, run.stderr.strip()) == (
        3,
        f"pyagent: error: OPA at {url}: HTTP 401 (bad credentials: Bearer ***)",
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("GET http://u:p%40ss@h:1/x failed", "GET http://***@h:1/x failed"),
        ("https://ghp_abcdefgh@github.com/o/r", "https://***@github.com/o/r"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
        ("GET /bundle?access_token=abc123&x=1", "GET /bundle?access_token=***&x=1"),
        ("basic authentication over TLS", "basic authentication over TLS"),
        # a short credential in an Authorization header, bare or quoted (it was kept: under 8 characters)
        ("Authorization: Bearer s3cr3t", "Authorization: Bearer ***"),
        ("{'authorization': 'Bearer abc'}", "{'authorization': 'Bearer ***'}"),
        ('"Authorization":"token x1", next', '"Authorization":"token ***", next'),
        ("authorization: denied", "authorization: denied"),
        ("Bearer tokens are required", "Bearer tokens are required"),
        ("the token expired", "the token expired"),
        # a pyagent server token, wherever it is quoted (was kept after "token=" outside a query string)
        ("GET /x token=pya_Rurlgh6eLX_lkQ3DcpPbIctUxw7sVtNfUe68cJDTTk8 (401)", "GET /x token=*** (401)"),
        ("X-Token: pya_6ySnCcFkZi4YTIbuLqamTFxpx76sQ3DcpPbIctUxw7s", "X-Token: ***"),
        ("the pya_ prefix", "the pya_ prefix"),
        # ids and revisions that start with the prefix, shorter than a token, are no tokens
        (
            "device pya_laptop0001 on revision pya_rev_20261205",
            "device pya_laptop0001 on revision pya_rev_20261205",
        ),
        # a token whatever touches it (a docs audit found these shown to readers): URL-encoded, with a
        # letter, digit or underscore on either side; a token-shaped run a character longer too
        (
            "Authorization%3A%20Bearer%20pya_6ySnCcFkZi4YTIbuLqamTFxpx76sQ3DcpPbIctUxw7s",
            "Authorization%3A%20Bearer%20***",
        ),
        ("com.x.pya_6ySnCcFkZi4YTIbuLqamTFxpx76sQ3DcpPbIctUxw7s", "com.x.***"),
        ("_pya_6ySnCcFkZi4YTIbuLqamTFxpx76sQ3DcpPbIctUxw7s", "_***"),
        ("xpya_6ySnCcFkZi4YTIbuLqamTFxpx76sQ3DcpPbIctUxw7s_x", "x***"),
        ("pya_6ySnCcFkZi4YTIbuLqamTFxpx76sQ3DcpPbIctUxw7s2", "***"),
    ],
)
def test_redact(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_the_agent_log_file_is_redacted(tmp_path: Path) -> None:
    from pyagent.agent.runner import ActivityLog

    shown: list[str] = []
    log = ActivityLog(tmp_path / "agent.jsonl", shown.append)
    token = "tok-" + secrets.token_urlsafe(24)
    log.event("upload_failed", "upload failed", error=f"https://{USER}:{PASSWORD}@h/logs: Bearer {token}")
    log.close()
    line = json.loads((tmp_path / "agent.jsonl").read_text())
    assert line["error"] == "https://***@h/logs: Bearer ***"
    assert shown == ["pyagent: agent: upload failed"]
