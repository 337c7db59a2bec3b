"""The `opa` engine over a Unix domain socket (``--opa-url unix:///path``): a real OPA listening on one
decides as over TCP; a socket served by another user is never asked (checked from the attacker's side:
a listener running as ``nobody`` that answers "allow" to anything)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyagent.bounded_http import TransportError
from pyagent.bounded_http.unix import UnixHTTPConnection
from pyagent.cli import cli
from pyagent.decide import decide
from pyagent.engines.base import EngineError, EngineSettings
from pyagent.engines.opa_server import parse_url
from pyagent.engines.select import build_engine
from pyagent.errors import InvalidInputError
from tests.helpers import domain
from tests.helpers.opa_server import RunningOpa, run_opa_server, run_opa_unix_server

AT = "2023-03-16T09:30:00Z"
TIKTOK = domain.make_report("eu-commission", "android", "corporate", True, ["com.zhiliaoapp.musically"])
CLEAN = domain.make_report("eu-commission", "android", "corporate", True, ["org.example.notes"])
NOBODY = 65534

# A listener that any local user could start: it answers every request "allow", and writes down each
# connection it accepts with the number of bytes it was sent on it.
FAKE_OPA = """
import os, socket, sys
directory = sys.argv[1]
os.setgid(65534)
os.setuid(65534)
server = socket.socket(socket.AF_UNIX)
server.bind(os.path.join(directory, "opa.sock.new"))  # listening before its name appears
os.chmod(os.path.join(directory, "opa.sock.new"), 0o777)
server.listen()
os.rename(os.path.join(directory, "opa.sock.new"), os.path.join(directory, "opa.sock"))
body = b'{"result": {"allow": true, "violations": [], "warnings": [], "exempted": []}}'
head = b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body)
while True:
    conn, _ = server.accept()
    conn.settimeout(2)
    data = b""
    try:
        data = conn.recv(65536)
        if data:
            conn.sendall(head + body)
    except OSError:
        pass
    conn.close()
    with open(os.path.join(directory, "connections"), "a") as out:
        out.write(f"{len(data)}\\n")
"""


def settings(url: str, **kw: object) -> EngineSettings:
    return EngineSettings(engine="opa", opa_url=url, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def unix_opa(opa_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningOpa]:
    with run_opa_unix_server(
        opa_bin, tmp_path_factory.mktemp("unix-opa"), extra_args=["--ignore", "*_test.rego"]
    ) as server:
        yield server


def _without_ids(decision: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in decision.items() if k not in ("decision_id", "evaluated_at")}


def test_an_opa_on_a_unix_socket_decides_as_the_same_opa_over_tcp(
    unix_opa: RunningOpa, opa_bin: str, tmp_path: Path
) -> None:
    with build_engine(settings(unix_opa.url)) as engine:
        over_unix = [decide(engine, report, at=AT) for report in (TIKTOK, CLEAN, TIKTOK)]
    with (
        run_opa_server(opa_bin, tmp_path, extra_args=["--ignore", "*_test.rego"]) as tcp,
        build_engine(settings(tcp.url)) as engine,
    ):
        over_tcp = [decide(engine, report, at=AT) for report in (TIKTOK, CLEAN, TIKTOK)]
    assert [_without_ids(d) for d in over_unix] == [_without_ids(d) for d in over_tcp]
    assert [[v["rule"] for v in d["violations"]] for d in over_unix] == [
        ["eu-commission/tiktok"],
        [],
        ["eu-commission/tiktok"],
    ]
    assert [d["allow"] for d in over_unix] == [False, True, False]


def test_check_over_a_unix_socket_exits_as_over_tcp(unix_opa: RunningOpa, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps(TIKTOK))
    args = [
        "check",
        str(report),
        "--engine",
        "opa",
        "--opa-url",
        unix_opa.url,
        "--at",
        AT,
        "--format",
        "json",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert [v["rule"] for v in json.loads(result.stdout)["violations"]] == ["eu-commission/tiktok"]


@contextlib.contextmanager
def fake_opa_of_another_user() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="pyagent-fake-opa-", dir="/tmp"))
    directory.chmod(0o777)
    process = subprocess.Popen([sys.executable, "-c", FAKE_OPA, str(directory)])
    try:
        deadline = time.monotonic() + 10
        while not (directory / "opa.sock").exists():
            assert process.poll() is None and time.monotonic() < deadline, "the fake OPA did not start"
            time.sleep(0.02)
        yield directory
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(directory)


@pytest.mark.skipif(os.geteuid() != 0, reason="starting a listener as another user needs root")
def test_a_socket_served_by_another_user_is_never_asked(tmp_path: Path) -> None:
    with fake_opa_of_another_user() as directory:
        url = f"unix://{directory}/opa.sock"
        with build_engine(settings(url)) as engine, pytest.raises(EngineError) as raised:
            engine.evaluate({"at": AT, "report": TIKTOK})
        assert str(raised.value) == (
            f"OPA at {url}: the process that listens on the socket runs as uid {NOBODY}, neither this user "
            "(uid 0) nor root: not asked"
        )
        report = tmp_path / "report.json"
        report.write_text(json.dumps(TIKTOK))
        result = CliRunner().invoke(
            cli, ["check", str(report), "--engine", "opa", "--opa-url", url, "--at", AT]
        )
        assert result.exit_code == 3 and result.stdout == ""
        assert "not asked" in result.stderr and "Traceback" not in result.stderr
        connections = directory / "connections"  # the fake saw both, and not one byte of a request
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
            not connections.exists() or len(connections.read_text().split()) < 2
        ):
            time.sleep(0.02)
        assert connections.read_text().split() == ["0", "0"]


def test_a_server_of_a_user_not_trusted_is_refused_without_root_too(
    unix_opa: RunningOpa, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same refusal where no second user can be had: the real OPA's user (ours) made untrusted."""
    monkeypatch.setattr("pyagent.bounded_http.unix.trusted_uids", lambda: frozenset({2**32 - 2}))
    with build_engine(settings(unix_opa.url)) as engine, pytest.raises(EngineError) as raised:
        engine.evaluate({"at": AT, "report": TIKTOK})
    assert str(raised.value) == (
        f"OPA at {unix_opa.url}: the process that listens on the socket runs as uid {os.geteuid()}, "
        f"neither this user (uid {os.geteuid()}) nor root: not asked"
    )


def test_where_the_kernel_cannot_tell_who_listens_unix_urls_are_refused(
    unix_opa: RunningOpa, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pyagent.engines.opa_server.UNIX_SUPPORTED", False)
    with pytest.raises(InvalidInputError, match=r"^--opa-url: .*: this system cannot tell who listens"):
        parse_url(unix_opa.url)
    monkeypatch.setattr("pyagent.bounded_http.unix.SUPPORTED", False)
    connection = UnixHTTPConnection(unix_opa.url.removeprefix("unix://"), unix_opa.url, 2.0)
    with pytest.raises(TransportError, match="this system cannot tell who listens on a socket") as raised:
        connection.connect()
    assert raised.value.kind == "untrusted"


def test_a_missing_socket_is_no_decision(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/none.sock"
    with build_engine(settings(url, opa_retries=0)) as engine, pytest.raises(EngineError) as raised:
        engine.evaluate({"at": AT, "report": CLEAN})
    assert str(raised.value).startswith(f"OPA at {url}: cannot connect (no socket at that path)")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("unix://opa.sock", "is not unix:///path"),
        ("unix://host/run/opa.sock", "is not unix:///path"),
        ("unix://user:secret@/run/opa.sock", "is not unix:///path"),
        ("unix:///run/opa.sock?x=1", "is not unix:///path"),
        ("unix:///run/opa.sock#f", "is not unix:///path"),
        ("unix:///run/opa\0.sock", "is not unix:///path"),
        ("unix:///run/opa.sock\n", "is not unix:///path"),
        ("unix:///run/my opa.sock", "is not unix:///path"),
        ("unix:///run/\x1b[31mopa.sock", "is not unix:///path"),
        ("unix:///" + "s" * 107, "a socket path is at most 107 bytes"),
    ],
)
def test_a_unix_url_that_is_not_an_absolute_socket_path_is_a_usage_error(url: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=f"^--opa-url: .*{message}") as raised:
        parse_url(url)
    assert "secret" not in str(raised.value)


def test_a_unix_url_is_its_path_and_takes_a_token_but_no_ca(tmp_path: Path) -> None:
    endpoint = parse_url("unix:///run/pyagent-opa/opa.sock")
    assert (endpoint.unix_path, endpoint.origin, endpoint.tls) == (
        "/run/pyagent-opa/opa.sock", "unix:///run/pyagent-opa/opa.sock", False,
    )  # fmt: skip
    assert parse_url("unix:///" + "s" * 106).unix_path == "/" + "s" * 106
    ca = tmp_path / "ca.pem"
    ca.write_text("not used")
    with pytest.raises(
        InvalidInputError, match=r"^--opa-ca is for an https:// URL, not unix:///run/x\.sock$"
    ):
        build_engine(settings("unix:///run/x.sock", opa_ca=str(ca)))
    with build_engine(settings("unix:///run/x.sock", opa_token="t0ken")):
        pass
