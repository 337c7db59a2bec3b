"""The real-process helpers for the server tests: a throwaway PostgreSQL and nginx."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers.nginx import run_nginx
from tests.helpers.postgres import run_postgres
from tests.helpers.services import find_binary, require_binary

PASSED_HEADERS = ("Authorization", "Content-Encoding", "Prefer", "If-None-Match")


def test_postgres_accepts_connections_and_creates_databases(tmp_path: Path) -> None:
    with run_postgres(tmp_path) as postgres:
        assert postgres.host == "127.0.0.1"
        assert postgres.url == f"postgresql+psycopg://pyagent@127.0.0.1:{postgres.port}/pyagent"
        assert postgres.dsn == f"postgresql://pyagent@127.0.0.1:{postgres.port}/pyagent"
        with psycopg.connect(postgres.dsn) as connection:
            row = connection.execute(
                "select 1, current_user, current_database(), current_setting('fsync'),"
                " current_setting('shared_buffers'), current_setting('max_connections')"
            ).fetchone()
            assert row == (1, "pyagent", "pyagent", "on", "128MB", "100")
        extra_url = postgres.create_database("pyagent_extra")
        assert extra_url == f"postgresql+psycopg://pyagent@127.0.0.1:{postgres.port}/pyagent_extra"
        with psycopg.connect(extra_url.replace("+psycopg", "")) as connection:
            connection.execute("create table t (n int)")
            connection.execute("insert into t values (7)")
            assert connection.execute("select n from t").fetchall() == [(7,)]
        with pytest.raises(ValueError, match="not a plain PostgreSQL database name"):
            postgres.create_database("x; drop")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres.dsn, connect_timeout=2)
    assert (tmp_path / f"postgres-{postgres.port}.log").read_text().count("database system is shut down") == 1


def _get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_nginx_serves_static_files_with_etag(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<p>pyagent</p>")
    (site / "app.js").write_text("console.log(1);")
    with run_nginx(tmp_path, static_root=site) as nginx:
        assert nginx.url == f"http://127.0.0.1:{nginx.port}"
        status, headers, body = _get(nginx.url, "/index.html")
        assert (status, body, headers["Content-Type"]) == (200, b"<p>pyagent</p>", "text/html")
        etag = headers["ETag"]
        assert etag.startswith('"') and etag.endswith('"')
        status, headers, body = _get(nginx.url, "/index.html", {"If-None-Match": etag})
        assert (status, body, headers["ETag"]) == (304, b"", etag)
        assert _get(nginx.url, "/app.js")[1]["Content-Type"] == "application/javascript"
        assert _get(nginx.url, "/missing.html")[0] == 404
    assert nginx.process.returncode == 0
    assert str(tmp_path) in nginx.conf_path.read_text()


@contextlib.contextmanager
def serve_name(name: str) -> Iterator[str]:
    """An HTTP server answering every request with JSON: its ``name``, the passed headers, the body size."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen = {header: self.headers.get(header) for header in PASSED_HEADERS}
            answer = json.dumps({"name": name, "headers": seen, "body_size": len(body)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _name(url: str) -> str:
    status, _, body = _get(url, "/anything")
    assert status == 200
    return str(json.loads(body)["name"])


def test_nginx_round_robins_across_upstreams(tmp_path: Path) -> None:
    with (
        serve_name("alpha") as alpha,
        serve_name("beta") as beta,
        run_nginx(tmp_path, upstreams=[alpha, beta]) as nginx,
    ):
        assert [_name(nginx.url) for _ in range(6)] == ["alpha", "beta"] * 3


def test_nginx_fails_over_when_an_upstream_is_dead(tmp_path: Path) -> None:
    # a port bound and never listened on, held for the test: refused, and no other test's server can
    # take it meanwhile (a free port once was, by a parallel worker's "alpha", and nginx never failed)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{held.getsockname()[1]}"
        with serve_name("alpha") as alpha, run_nginx(tmp_path, upstreams=[dead, alpha]) as nginx:
            assert [_name(nginx.url) for _ in range(6)] == ["alpha"] * 6
    assert "Connection refused" in nginx.error_log.read_text()


def test_nginx_serves_existing_files_and_proxies_the_rest(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "ui.html").write_text("ui")
    with serve_name("alpha") as alpha, run_nginx(tmp_path, upstreams=[alpha], static_root=site) as nginx:
        assert _get(nginx.url, "/ui.html")[::2] == (200, b"ui")
        assert _name(nginx.url) == "alpha"


def test_nginx_passes_headers_and_large_bodies(tmp_path: Path) -> None:
    headers = {
        "Authorization": "Bearer t0ken",
        "Content-Encoding": "gzip",
        "Prefer": "wait=30",
        "If-None-Match": '"rev-1"',
        "Content-Type": "application/octet-stream",
    }
    body = b"x" * (3 * 1024 * 1024)  # over nginx's default 1m limit
    with serve_name("alpha") as alpha, run_nginx(tmp_path, upstreams=[alpha], max_body="4m") as nginx:
        connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
        connection.request("POST", "/v1/reports", body=body, headers=headers)
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read()) == {
            "name": "alpha",
            "headers": {name: headers[name] for name in PASSED_HEADERS},
            "body_size": len(body),
        }
        connection.close()
        connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
        connection.request("POST", "/v1/reports", body=b"x" * (5 * 1024 * 1024))
        assert connection.getresponse().status == 413
        connection.close()


def test_require_binary_skips_or_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = "pyagent-no-such-binary"
    assert find_binary(missing) is None
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{missing} is not installed"):
        require_binary(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"{missing} is not installed"):
        require_binary(missing)
    assert require_binary("sh") == find_binary("sh")
