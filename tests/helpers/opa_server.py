"""A real ``opa run --server`` on a free loopback port, for tests that need a server."""

from __future__ import annotations

import collections
import contextlib
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.services import stop_process

REPO = Path(__file__).resolve().parents[2]
POLICY_DIRS = (REPO / "policies" / "rego", REPO / "policies" / "data")


#: Ports handed out lately, still bound (not listening) so that the kernel gives them to no one
#: else, an outgoing connection's ephemeral port or another worker's server, before their own
#: server binds them. Servers here (uvicorn, Go's net, nginx, PostgreSQL) set SO_REUSEADDR, as the
#: reservation does, so they bind beside it; an old reservation is let go when a new one is made.
_RESERVED: collections.deque[socket.socket] = collections.deque()
_KEEP = 32


def free_port() -> int:
    """A loopback port nothing listens on, reserved for the caller's server (see ``_RESERVED``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    _RESERVED.append(sock)
    while len(_RESERVED) > _KEEP:
        _RESERVED.popleft().close()
    return int(sock.getsockname()[1])


@dataclass
class RunningOpa:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, deadline: float, ca: Path | None = None
) -> None:
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"opa exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=0.5, context=context) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"opa did not become healthy at {url}: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def run_opa_server(
    opa: str,
    workdir: Path,
    *,
    paths: Sequence[Path] = POLICY_DIRS,
    extra_args: Sequence[str] = (),
    tls_ca: Path | None = None,
    bundle: bool = False,
    env: Mapping[str, str] | None = None,
    log_level: str = "error",
) -> Iterator[RunningOpa]:
    """Start ``opa run --server`` with ``paths`` loaded; stop it afterwards.

    With ``tls_ca``, the server speaks HTTPS (``extra_args`` carry its certificate) and the health
    check trusts that CA. With ``bundle``, ``paths`` are loaded as bundles (``--bundle``), which
    OPA needs to verify their signatures (``extra_args``: ``--verification-key`` etc.). ``env``: the
    server's whole environment (default: this process's).
    """
    port = free_port()
    url = f"{'https' if tls_ca else 'http'}://127.0.0.1:{port}"
    log = workdir / f"opa-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                opa,
                "run",
                "--server",
                "--addr",
                f"127.0.0.1:{port}",
                "--log-level",
                log_level,
                *extra_args,
                *(["--bundle"] if bundle else []),
                *(str(p) for p in paths),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
        )
    try:
        wait_healthy(url, process, log, time.monotonic() + 20, tls_ca)
        yield RunningOpa(url=url, process=process, log=log)
    finally:
        stop_process(process)


def unix_get(path: str, url_path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """``GET url_path`` from the server on the Unix socket at ``path`` (pyagent's own connection)."""
    from pyagent.bounded_http.unix import UnixHTTPConnection

    connection = UnixHTTPConnection(path, f"unix://{path}", timeout)
    try:
        connection.request("GET", url_path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_healthy_unix(path: str, process: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"opa exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if unix_get(path, "/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"opa did not become healthy on {path}: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def run_opa_unix_server(
    opa: str, workdir: Path, *, paths: Sequence[Path] = POLICY_DIRS, extra_args: Sequence[str] = ()
) -> Iterator[RunningOpa]:
    """``opa run --server`` listening on the Unix socket ``workdir/opa.sock`` only; ``url`` is
    ``unix://`` and that path."""
    sock = workdir / "opa.sock"
    log = workdir / "opa-unix.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [opa, "run", "--server", "--addr", f"unix://{sock}", "--log-level", "error", *extra_args,
             *(str(p) for p in paths)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_healthy_unix(str(sock), process, log, time.monotonic() + 20)
        yield RunningOpa(url=f"unix://{sock}", process=process, log=log)
    finally:
        stop_process(process)
