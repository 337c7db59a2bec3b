"""``services.NAME.tls.ca_cert`` is read again when the file changes, as OPA reads it for every client it
makes: a CA rotated in place is trusted without a restart, and a CA taken out of the file is no longer
trusted (both held until the agent restarted). A TLS server of this test's own answers 204; it only
serves the handshake (never a decision)."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pyagent.agent.http import ServiceClient
from pyagent.bounded_http import TransportError
from pyagent.config.opa import Service
from tests.helpers import tls


class _NoContent(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: each request makes a new handshake

    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def _tls_server(context: ssl.SSLContext) -> Iterator[int]:
    """A server whose certificate is the one ``context`` holds at each new connection."""

    class Server(http.server.ThreadingHTTPServer):
        def get_request(self) -> tuple[socket.socket, object]:
            raw, address = self.socket.accept()
            return context.wrap_socket(raw, server_side=True), address

    server = Server(("127.0.0.1", 0), _NoContent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _pki(root: Path, name: str) -> tls.TestPki:
    (root / name).mkdir()
    return tls.make_pki(root / name)


def _replace(target: Path, source: Path) -> None:
    staged = target.with_suffix(".new")
    shutil.copyfile(source, staged)
    os.replace(staged, target)  # (as a rotation does: a new file under the old name)


def test_a_ca_rotated_in_place_is_trusted_and_one_taken_out_is_not(tmp_path: Path) -> None:
    first, second = _pki(tmp_path, "first"), _pki(tmp_path, "second")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(first.server_cert, first.server_key)
    ca_file = tmp_path / "ca.pem"
    shutil.copyfile(first.ca_cert, ca_file)
    with _tls_server(server_context) as port:
        client = ServiceClient(Service("fleet", f"https://127.0.0.1:{port}", ca_cert=ca_file))
        assert client.request("GET", "/health", timeout=10, max_body=1024).status == 204
        server_context.load_cert_chain(second.server_cert, second.server_key)  # the server rotates first
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            client.request("GET", "/health", timeout=10, max_body=1024)
        _replace(ca_file, second.ca_cert)  # then the CA file: no restart
        assert client.request("GET", "/health", timeout=10, max_body=1024).status == 204
        _replace(ca_file, first.ca_cert)  # the second CA taken out again: no longer trusted
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            client.request("GET", "/health", timeout=10, max_body=1024)
        _rewrite_in_place(ca_file, second.ca_cert)  # as `cp -p` does: the same file, its time kept
        assert client.request("GET", "/health", timeout=10, max_body=1024).status == 204


def _rewrite_in_place(target: Path, source: Path) -> None:
    """``source``'s bytes written into ``target`` itself, its modification time put back (the two test
    CAs' PEM files are of one size: only the change time tells the rewrite)."""
    kept = target.stat()
    with target.open("r+b") as out:
        out.write(source.read_bytes())
        out.truncate()
    os.utime(target, ns=(kept.st_atime_ns, kept.st_mtime_ns))
