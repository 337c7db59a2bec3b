"""A real OCI registry (Debian's ``docker-registry``, the CNCF distribution registry) on a free loopback
port, the real ``oras`` to push bundles to it, and a small proxy in front of it that can lie.

The registry stores blobs under ``workdir/registry-PORT/storage`` and writes its access log (one
combined-log line per request) to ``stdout.log`` there: :meth:`RunningRegistry.requests` reads it, so a
test can count what a client asked for. ``oras`` is ``$PYAGENT_ORAS``, else ``.tools/bin/oras`` (``make
oras``), else on ``PATH``; like the registry it is skipped when absent, except on CI (``CI=true``).
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers.opa_server import free_port
from tests.helpers.services import require_binary, stop_process

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 15
BUNDLE_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) ')


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI installs it, so it must be there")
    pytest.skip(reason)


def require_oras() -> Path:
    """The ``oras`` binary; skips the test when there is none, or fails it on CI."""
    configured = os.environ.get("PYAGENT_ORAS")
    candidates = [Path(configured)] if configured else []
    candidates.append(REPO / ".tools" / "bin" / "oras")
    found = shutil.which("oras")
    candidates += [Path(found)] if found else []
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    _missing("oras is not built (run `make oras`)")
    raise AssertionError("unreachable")


@dataclass
class RunningRegistry:
    host: str
    """``127.0.0.1:PORT``, as a reference names the registry."""
    url: str
    process: subprocess.Popen[bytes]
    access_log: Path
    storage: Path

    def requests(self) -> list[tuple[str, str, int]]:
        """Every request the registry answered so far: (method, path, status), in order."""
        text = self.access_log.read_text(errors="replace") if self.access_log.exists() else ""
        return [(m["method"], m["path"], int(m["status"])) for m in _ACCESS.finditer(text)]

    def blob_gets(self, digest: str) -> int:
        return sum(1 for method, path, _ in self.requests() if method == "GET" and path.endswith(digest))

    def push(self, oras: Path, bundle: Path, reference: str, *, annotation: str | None = None) -> str:
        """``oras push`` of ``bundle`` as OPA's bundle layer (with the manifest ``annotation``
        ``KEY=VALUE``, if given); returns the manifest digest it pushed."""
        workdir = bundle.parent
        config = workdir / "oci-config.json"
        config.write_text("{}")
        extra = ["--annotation", annotation] if annotation else []
        done = subprocess.run(
            [str(oras), "push", "--plain-http", "--no-tty", "--format", "json", *extra,
             "--config", f"{config.name}:{CONFIG_MEDIA_TYPE}", f"{self.host}/{reference}",
             f"{bundle.name}:{BUNDLE_LAYER}"],
            cwd=workdir, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"oras push failed ({done.returncode}): {done.stderr}{done.stdout}")
        digest: str = json.loads(done.stdout)["digest"]
        return digest


def _config(storage: Path, port: int) -> str:
    return f"""version: 0.1
log:
  level: warn
  formatter: text
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: {HOST}:{port}
  secret: pyagent-tests-{port}
"""


@contextlib.contextmanager
def run_registry(workdir: Path) -> Iterator[RunningRegistry]:
    """Start ``docker-registry`` on a free loopback port; stop it (SIGTERM, then SIGKILL) on exit."""
    binary = require_binary("docker-registry")
    port = free_port()
    prefix = workdir / f"registry-{port}"
    storage = prefix / "storage"
    storage.mkdir(parents=True)
    config = prefix / "config.yml"
    config.write_text(_config(storage, port))
    access_log, error_log = prefix / "stdout.log", prefix / "stderr.log"
    with access_log.open("wb") as stdout, error_log.open("wb") as stderr:
        process = subprocess.Popen(
            [str(binary), "serve", str(config)], stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited with {process.returncode}: "
                    f"{error_log.read_text(errors='replace')[-3000:]}"
                )
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not listen on {HOST}:{port} in {START_TIMEOUT} s")
            time.sleep(0.05)
        yield RunningRegistry(f"{HOST}:{port}", f"http://{HOST}:{port}", process, access_log, storage)
    finally:
        stop_process(process)


@dataclass
class LyingProxy:
    """What the proxy saw, and what it changes: blob bodies swapped by digest, blobs redirected."""

    url: str
    host: str
    swap: dict[str, bytes] = field(default_factory=dict)
    """Blob digest -> the bytes sent instead of the registry's (a registry that lies)."""
    redirect_blobs_to: str | None = None
    """Answer every blob GET with a 307 to this origin instead."""
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    """(path, Authorization header) of every request."""
    issue_token: str | None = None
    """Act as a registry with a token service: ``/v2/`` requests without ``Bearer ISSUE_TOKEN`` get a 401
    challenge naming ``token_realm``, and ``GET /token`` issues ``ISSUE_TOKEN``."""
    token_realm: str | None = None
    """The challenge's realm (default: this proxy's ``/token``)."""


@contextlib.contextmanager
def lying_proxy(upstream: str) -> Iterator[LyingProxy]:
    """A plain HTTP proxy to ``upstream`` (the registry's URL) that can swap blob bodies."""
    target = urlsplit(upstream)
    state = LyingProxy(url="", host="")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            authorization = self.headers.get("Authorization")
            state.seen.append((self.path, authorization))
            digest = self.path.rsplit("/", 1)[-1]
            if state.issue_token is not None and self.path.startswith("/token"):
                self.answer(200, json.dumps({"token": state.issue_token}).encode(), {})
                return
            if state.issue_token is not None and authorization != f"Bearer {state.issue_token}":
                realm = state.token_realm or f"{state.url}/token"
                challenge = f'Bearer realm="{realm}",service="registry.test",scope="repository:x:pull"'
                self.answer(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                            {"WWW-Authenticate": challenge, "Content-Type": "application/json"})  # fmt: skip
                return
            if "/blobs/" in self.path and state.redirect_blobs_to is not None:
                self.send_response(307)
                self.send_header("Location", f"{state.redirect_blobs_to}{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            conn = http.client.HTTPConnection(target.hostname or HOST, target.port, timeout=10)
            try:
                forward = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request("GET", self.path, headers=forward)
                answer = conn.getresponse()
                body = answer.read()
            finally:
                conn.close()
            if "/blobs/" in self.path and digest in state.swap and answer.status == 200:
                body = state.swap[digest]
            self.send_response(answer.status)
            dropped = ("content-length", "connection", "transfer-encoding", "date", "server")
            for name, value in answer.getheaders():
                if name.lower() not in dropped:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
    state.host = f"{HOST}:{server.server_address[1]}"
    state.url = f"http://{state.host}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
