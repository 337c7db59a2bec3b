"""A real nginx (Debian's ``nginx``) on a free loopback port, in front of server replicas or a directory.

nginx runs in the foreground (``daemon off;``) with its prefix, configuration, pid file, logs and
temporary files all in ``workdir/nginx-PORT/``; it never reads ``/etc/nginx`` nor writes
``/var/log/nginx`` (``-e`` moves even the start-up error log). One worker process, so the round robin
over ``upstreams`` is one sequence. As root, the worker runs as root too (``user root;``), or it
could not read files under a private ``workdir``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.opa_server import free_port
from tests.helpers.services import require_binary

HOST = "127.0.0.1"
START_TIMEOUT = 10
STOP_TIMEOUT = 5
MIME_TYPES = {
    "text/html": "html htm",
    "text/css": "css",
    "text/plain": "txt",
    "application/javascript": "js mjs",
    "application/json": "json",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/x-icon": "ico",
}


@dataclass
class RunningNginx:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    conf_path: Path
    error_log: Path

    def upstreams_used(self) -> list[str]:
        """The replica (host:port) that answered each proxied request so far, in order."""
        log = self.conf_path.parent / "access.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [line.rsplit(" ", 1)[1] for line in lines if line.rsplit(" ", 1)[-1] not in ("", "-")]


def _upstream(upstreams: Sequence[str]) -> str:
    """The replicas, round robin; a replica that fails is skipped for 5 s.

    No keepalive to the replicas: a request to a replica that was killed then fails with a refused
    connection, which nginx retries on the next replica, even a POST (it was never sent).
    """
    servers = "".join(f"    server {address} max_fails=1 fail_timeout=5s;\n" for address in upstreams)
    return f"  upstream replicas {{\n{servers}  }}\n"


# Long polls are held up to ~60 s; request and response bodies stream both ways, unbuffered.
# Authorization, Content-Encoding, Prefer and If-None-Match pass through as nginx passes every header.
_PROXY = """
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_connect_timeout 5s;
      proxy_read_timeout 120s;
      proxy_send_timeout 120s;
      proxy_next_upstream error timeout;
    """


def _locations(upstreams: Sequence[str], static_root: Path | None, prefix: str) -> str:
    if prefix:  # the upstream's root under /prefix/, as a reverse proxy publishes a service
        return f"    location {prefix}/ {{{_PROXY.replace('http://replicas;', 'http://replicas/;')}}}\n"
    if static_root is None:
        return f"    location / {{{_PROXY}}}\n"
    if not upstreams:
        return f"    root {static_root.resolve()};\n    location / {{ }}\n"
    # both: an existing file is served, every other request proxied
    return (
        f"    root {static_root.resolve()};\n    location / {{ try_files $uri @replicas; }}\n"
        f"    location @replicas {{{_PROXY}}}\n"
    )


def _config(
    prefix: Path, port: int, upstreams: Sequence[str], static_root: Path | None, max_body: str, under: str
) -> str:
    types = "".join(f"    {mime} {extensions};\n" for mime, extensions in MIME_TYPES.items())
    return f"""{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  log_format upstream '$request $status $upstream_addr';
  access_log {prefix}/access.log upstream;
  client_body_temp_path {prefix}/client_body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  client_max_body_size {max_body};
  types {{
{types}  }}
  default_type application/octet-stream;
  etag on;
{_upstream(upstreams) if upstreams else ""}
  server {{
    listen {HOST}:{port};
    server_name localhost;
{_locations(upstreams, static_root, under)}  }}
}}
"""


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def _wait_listening(port: int, process: subprocess.Popen[bytes], error_log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}; error log tail:\n{_tail(error_log)}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(
        f"nginx did not listen on {HOST}:{port} within {START_TIMEOUT}s; error log tail:\n{_tail(error_log)}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGQUIT (graceful); after ``STOP_TIMEOUT`` s (a held long poll), SIGKILL master and worker."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGQUIT)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its own session: the worker goes too
        process.wait()


@contextlib.contextmanager
def run_nginx(
    workdir: Path,
    *,
    upstreams: Sequence[str] = (),
    static_root: Path | None = None,
    max_body: str = "64m",
    under: str = "",
) -> Iterator[RunningNginx]:
    """Start nginx proxying to ``upstreams`` ("127.0.0.1:PORT") and/or serving ``static_root``.

    With both, an existing file is served from ``static_root`` and every other request proxied. With
    ``under`` (``/opa``), the upstreams' root is served under that path only, and nothing else.
    """
    if not upstreams and static_root is None:
        raise ValueError("run_nginx needs upstreams, a static_root, or both")
    if under and (static_root is not None or not under.startswith("/") or under.endswith("/")):
        raise ValueError("run_nginx: under is a /path for upstreams alone")
    nginx = require_binary("nginx")
    port = free_port()
    prefix = workdir / f"nginx-{port}"
    prefix.mkdir(parents=True)
    conf_path, error_log = prefix / "nginx.conf", prefix / "error.log"
    conf_path.write_text(_config(prefix, port, upstreams, static_root, max_body, under))
    with error_log.open("ab") as stderr:  # nginx's own start-up complaints go there too
        process = subprocess.Popen(
            [str(nginx), "-p", str(prefix), "-c", str(conf_path), "-e", str(error_log), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        _wait_listening(port, process, error_log)
        yield RunningNginx(
            url=f"http://{HOST}:{port}", port=port, process=process, conf_path=conf_path, error_log=error_log
        )
    finally:
        _stop(process)
