"""A real ``pyagent server run`` process on a free loopback port, and tokens for it."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyagent.server.auth import new_token, token_hash
from pyagent.server.store import open_store
from tests.helpers.opa_server import free_port
from tests.helpers.services import stop_process


@dataclass
class RunningServer:
    url: str
    port: int
    db: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown code runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def add_token(db: str, name: str, role: str) -> str:
    """A new token of ``role`` in the store at ``db``; returns the secret."""
    store = open_store(db)
    try:
        secret = new_token()
        store.add_token(name, role, token_hash(secret))
        return secret
    finally:
        store.close()


def published_database(workdir: Path) -> tuple[str, str]:
    """(URL, agent token) of a SQLite database in ``workdir`` with the shipped policy published as
    bundle ``pyagent`` (Rego, revision r1) by the command line, as an operator does."""
    db = f"sqlite:///{workdir / 'server.db'}"
    bundle = workdir / "rego.tar.gz"
    for args in (["policy", "bundle", "--target", "rego", "--revision", "r1", "-o", str(bundle)],
                 ["server", "publish", "--name", "pyagent", str(bundle), "--db", db]):  # fmt: skip
        subprocess.run([sys.executable, "-m", "pyagent", *args], check=True, capture_output=True)
    return db, add_token(db, "agents", "agent")


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30, ca: Path | None = None
) -> None:
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pyagent server exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1, context=context) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"pyagent server did not become healthy at {url}: {log.read_text()[-3000:]}")


def _limit_files(count: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


@contextlib.contextmanager
def run_server(
    workdir: Path,
    db: str,
    *,
    port: int | None = None,
    extra_args: Sequence[str] = (),
    tls_ca: Path | None = None,
    file_limit: int | None = None,
) -> Iterator[RunningServer]:
    """Start ``pyagent server run --db DB`` (``python -m pyagent``, this interpreter); stop it after.
    With ``tls_ca``, ``extra_args`` carry ``--tls-cert``/``--tls-key`` and the URL is https. With
    ``file_limit``, the server's open-file limit, soft and hard (it can raise neither)."""
    port = port or free_port()
    log = workdir / f"server-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYAGENT_SERVER_DB", None)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pyagent", "server", "run", "--bind", f"127.0.0.1:{port}", "--db", db,
             *extra_args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=None if file_limit is None else lambda: _limit_files(file_limit),
        )  # fmt: skip
    url = f"{'https' if tls_ca else 'http'}://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log, ca=tls_ca)
        yield RunningServer(url, port, db, process, log)
    finally:
        stop_process(process, grace=10)


def bundle_get(
    port: int, token: str, *, etag: str | None = None, wait: int | None = None
) -> tuple[int, str, str]:
    """(status, content type, ETag) of ``GET /bundles/pyagent``."""
    headers = {"Authorization": f"Bearer {token}"}
    if etag:
        headers["If-None-Match"] = etag
    if wait:
        headers["Prefer"] = f"wait={wait}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("GET", "/bundles/pyagent", headers=headers)
        answer = connection.getresponse()
        answer.read()
        return answer.status, answer.getheader("content-type", ""), answer.getheader("etag", "")
    finally:
        connection.close()


def long_poll(port: int, token: str, etag: str) -> socket.socket:
    """A long poll for 300 s (the server's most) sent on a connection of its own, its answer left unread."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"GET /bundles/pyagent HTTP/1.1\r\nHost: pyagent\r\nAuthorization: Bearer {token}\r\n"
            f"If-None-Match: {etag}\r\nPrefer: wait=300\r\n\r\n")  # fmt: skip
    sock.sendall(head.encode())
    return sock
