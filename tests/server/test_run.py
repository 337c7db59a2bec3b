"""``pyagent server run`` as a real process: TLS, and its usage errors."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pyagent.server.settings import ServerSettings
from tests.helpers.pyagent_server import add_token, run_server
from tests.helpers.tls import make_ca, make_pki


def test_tls_with_a_given_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    db = f"sqlite:///{tmp_path / 'server.db'}"
    token = add_token(db, "reader", "reader")
    args = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    with run_server(tmp_path, db, extra_args=args, tls_ca=pki.ca_cert) as server:
        assert server.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        request = urllib.request.Request(
            f"{server.url}/api/v1/devices/nobody", headers={"Authorization": f"Bearer {token}"}
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, context=context, timeout=5)
        assert answer.value.code == 404
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(f"{server.url}/health", timeout=5)  # a client without the CA refuses
        plain = server.url.replace("https://", "http://")
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(f"{plain}/health", timeout=5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--bind", "localhost"],
            "pyagent: error: --bind 'localhost': expected HOST:PORT, e.g. 127.0.0.1:8282\n",
        ),
        (
            ["--bind", "127.0.0.1:99999"],
            "pyagent: error: --bind '127.0.0.1:99999': expected HOST:PORT, e.g. 127.0.0.1:8282\n",
        ),
        *[
            (
                ["--bind", bind],
                f"pyagent: error: --bind {bind!r}: an IPv6 address goes whole in brackets, e.g. [::1]:8282\n",
            )
            for bind in ("[::1:8282", "::1:8282", "[]:8282", "[::1]]:8282", "::1]:8282")
        ],  # (each was taken: "[::1" listened, and the server said http://::1:8282)
    ],
)
def test_usage_errors_exit_2_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pyagent", "server", "run", "--db", str(tmp_path / "s.db"), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (2, message)


def test_tls_cert_without_key_is_a_usage_error(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pyagent", "server", "run", "--db", str(tmp_path / "s.db"),
         "--tls-cert", str(pki.server_cert)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (2, "pyagent: error: --tls-cert and --tls-key go together\n")


def _run_until_exit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyagent", "server", "run", "--db", str(tmp_path / "s.db"), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_certificate_and_key_that_do_not_load_are_usage_errors_before_the_port_opens(
    tmp_path: Path,
) -> None:
    """They were uvicorn's SSLError after the startup line: "internal error", exit 3, no file named."""
    pki = make_pki(tmp_path)
    ca_cert, ca_key = make_ca(tmp_path, "other CA")
    mismatched = _run_until_exit(tmp_path, "--tls-cert", str(pki.server_cert), "--tls-key", str(ca_key))
    assert (mismatched.returncode, mismatched.stderr) == (
        2, f"pyagent: error: TLS certificate {pki.server_cert} and key {ca_key}: the key does not belong to "
        "the certificate\n",
    )  # fmt: skip
    notes = tmp_path / "notes.txt"
    notes.write_text("not a certificate\n")
    not_pem = _run_until_exit(tmp_path, "--tls-cert", str(notes), "--tls-key", str(pki.server_key))
    assert (not_pem.returncode, not_pem.stderr) == (
        2, f"pyagent: error: TLS certificate {notes} and key {pki.server_key}: expected a PEM certificate "
        "and its PEM private key\n",
    )  # fmt: skip
    assert ca_cert.exists()


def test_an_address_that_cannot_be_bound_is_a_usage_error_naming_bind(tmp_path: Path) -> None:
    """A port in use was uvicorn's "ERROR: [Errno 98] ..." after "pyagent server on ...", exit 3."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = _run_until_exit(tmp_path, "--bind", f"127.0.0.1:{port}")
    assert (in_use.returncode, in_use.stderr) == (
        2, f"pyagent: error: --bind 127.0.0.1:{port}: Address already in use\n",
    )  # fmt: skip
    foreign = _run_until_exit(tmp_path, "--bind", "192.0.2.1:8282")  # TEST-NET-1: no interface has it
    assert (foreign.returncode, foreign.stderr) == (
        2, "pyagent: error: --bind 192.0.2.1:8282: Cannot assign requested address\n",
    )  # fmt: skip


def test_a_verification_key_that_cannot_be_read_names_the_config_key(tmp_path: Path) -> None:
    """It was reported after the startup line's "signed bundles only", naming the key file only."""
    config = tmp_path / "server.toml"
    config.write_text(f'[server.verification]\nkey_path = "{tmp_path / "absent.pem"}"\n')
    done = _run_until_exit(tmp_path, "--config", str(config))
    assert (done.returncode, done.stderr) == (
        2, f"pyagent: error: {config}: server.verification.key_path: {tmp_path / 'absent.pem'}: verification "
        "key not found\n",
    )  # fmt: skip


def test_workers_share_one_store_and_log_their_warnings(tmp_path: Path) -> None:
    """--workers 2: processes on one port, each with its own store connection, one fleet; each worker's
    warnings are the server's log too (a decision dated 2099: one warning per batch)."""
    import gzip
    import json

    from tests.server.conftest import decision_event

    db = f"sqlite:///{tmp_path / 'server.db'}"
    agent = add_token(db, "agents", "agent")
    with run_server(tmp_path, db, extra_args=["--workers", "2"]) as server:
        for number in range(10):
            at = "2023-03-16T09:30:00Z" if number < 6 else "2099-01-01T00:00:00Z"
            body = gzip.compress(
                json.dumps([decision_event(f"w-{number}", device_id=f"dev-{number}", at=at)]).encode()
            )
            request = urllib.request.Request(
                f"{server.url}/logs", data=body, method="POST",
                headers={"Authorization": f"Bearer {agent}", "Content-Encoding": "gzip",
                         "Content-Type": "application/json"},
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert json.load(answer)["stored"] == (1 if number < 6 else 0)
    from pyagent.server.store import open_store

    store = open_store(db)
    assert [store.device(f"dev-{n}") is not None for n in range(10)] == [True] * 6 + [False] * 4
    warned = [line for line in server.log.read_text().splitlines() if "dated after their arrival" in line]
    assert [line.split(" (e.g. ")[1].split()[0] for line in warned] == ["w-6", "w-7", "w-8", "w-9"]


def test_a_keep_alive_connection_is_closed_after_its_max_age(tmp_path: Path) -> None:
    """A connection serves requests for CONNECTION_MAX_AGE_SECONDS, then its next answer closes it, so that
    uploaders spread over the worker processes again (a connection stays with the process that took it)."""
    import http.client
    import time

    from pyagent.server.protocol import CONNECTION_MAX_AGE_SECONDS

    with run_server(tmp_path, f"sqlite:///{tmp_path / 'server.db'}") as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        answers = []
        started = time.monotonic()
        for pause in (0.0, 0.0, CONNECTION_MAX_AGE_SECONDS + 0.2 - (time.monotonic() - started)):
            time.sleep(max(0.0, pause))
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            answers.append((response.status, response.getheader("connection")))
        connection.close()
    assert answers == [(200, None), (200, None), (200, "close")]


def _login_behind_a_balancer(port: int, balancer: str, token: str) -> tuple[int, str]:
    """POST /login as a TLS-terminating load balancer at address ``balancer`` forwards a browser's."""
    import http.client
    from urllib.parse import urlencode

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(balancer, 0))
    headers = {"Host": "fleet.example", "X-Forwarded-Proto": "https", "Origin": "https://fleet.example",
               "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
    connection.request("POST", "/login", body=urlencode({"token": token, "next": "/"}), headers=headers)
    answer = connection.getresponse()
    answer.read()
    connection.close()
    return answer.status, answer.getheader("set-cookie") or ""


def test_a_load_balancer_on_another_host_is_believed_once_named(tmp_path: Path) -> None:
    """Behind a balancer that terminates TLS elsewhere, the browser's origin is https: believed from
    127.0.0.1 only by default (a login was refused as cross-origin), from the addresses named."""
    db = f"sqlite:///{tmp_path / 'server.db'}"
    reader = add_token(db, "readers", "reader")
    with run_server(tmp_path, db) as server:
        assert _login_behind_a_balancer(server.port, "127.0.0.2", reader) == (403, "")
    with run_server(tmp_path, db, extra_args=["--forwarded-allow-ips", "127.0.0.2"]) as server:
        status, cookie = _login_behind_a_balancer(server.port, "127.0.0.2", reader)
    assert status == 303 and cookie.startswith("pyagent_session=") and "; secure" in cookie.lower()


def test_sigterm_stops_the_server_with_exit_0(tmp_path: Path) -> None:
    """systemd's stop: the server shuts down gracefully and exits 0, as its help says (uvicorn raised
    the signal again once done, and the process died by it: -15)."""
    db = f"sqlite:///{tmp_path / 'server.db'}"
    with run_server(tmp_path, db) as server:
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=30)
        log = server.log.read_text()
    assert (code, "Traceback" in log) == (0, False), log[-2000:]


@pytest.mark.parametrize(
    ("bind", "expected"),
    [("127.0.0.1:8282", ("127.0.0.1", 8282)), ("[::1]:8282", ("::1", 8282)), (":8282", ("0.0.0.0", 8282)),
     ("localhost:1", ("localhost", 1)), ("[fe80::1%eth0]:8282", ("fe80::1%eth0", 8282))],
)  # fmt: skip
def test_a_bind_address_is_read_as_opa_reads_its_addr(bind: str, expected: tuple[str, int]) -> None:
    assert ServerSettings(bind=bind).host_port() == expected


def test_the_server_raises_its_open_file_limit_to_the_hard_limit() -> None:
    """As Go's runtime raises OPA's: every connection, each held long poll, is a file, and Linux's usual
    soft limit of 1,024 held a server to a thousand agents. Half the limit bounds the held polls."""
    import resource

    from pyagent.server.protocol import held_poll_limit, raise_file_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert held_poll_limit() == 128
        raised = raise_file_limit()
        now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        expected = hard if hard != resource.RLIM_INFINITY else 1 << 20
        assert (raised, now, held_poll_limit()) == (expected, expected, expected // 2)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
