"""The shipped nginx configuration (deploy/nginx/pyagent.conf) passes the replicas what the tests'
nginx (tests/helpers/nginx.py, with which every replica test runs) passes them: without
X-Forwarded-Proto a dashboard login behind TLS was refused as a cross-origin post. And run as shipped,
it holds a fleet's long polls."""

from __future__ import annotations

import os
import re
import resource
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import nginx
from tests.helpers.opa_server import free_port
from tests.helpers.pyagent_server import bundle_get, long_poll, published_database, run_server
from tests.helpers.services import require_binary

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "nginx" / "pyagent.conf"
LONG_POLLS = 1200  # past what nginx's default 1,024 connections a worker carry (two for each)


def _headers(text: str) -> dict[str, str]:
    return dict(re.findall(r"proxy_set_header\s+(\S+)\s+([^;]+);", text))


def test_the_shipped_config_sets_every_header_the_tested_one_sets() -> None:
    shipped = _headers(SHIPPED.read_text(encoding="utf-8"))
    assert shipped == _headers(nginx._PROXY)
    assert shipped["X-Forwarded-Proto"] == "$scheme"


@pytest.mark.timeout(240)
def test_the_shipped_config_holds_more_long_polls_than_nginx_s_default(tmp_path: Path) -> None:
    """With nginx's default 1,024 connections a worker, it held 476 of 600 long polls and reset the rest
    (replicas audit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * LONG_POLLS:  # (this process holds one file for each, the server and nginx theirs)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * LONG_POLLS), hard))
    db, token = published_database(tmp_path)
    port, prefix = free_port(), tmp_path / "nginx"
    prefix.mkdir()
    with run_server(tmp_path, db) as server:
        conf = SHIPPED.read_text(encoding="utf-8").replace("127.0.0.1:8300", f"127.0.0.1:{port}")
        conf = conf.replace("127.0.0.1:8301", f"127.0.0.1:{server.port}")
        conf = conf.replace("    server 127.0.0.1:8302 max_fails=1 fail_timeout=5s;\n", "")
        (prefix / "nginx.conf").write_text(("user root;\n" if os.geteuid() == 0 else "") + conf)
        error_log = prefix / "error.log"
        with error_log.open("ab") as stderr:
            balancer = subprocess.Popen(
                [str(require_binary("nginx")), "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
            )  # fmt: skip
        held = []
        try:
            nginx._wait_listening(port, balancer, error_log)
            etag = bundle_get(port, token)[2]
            held = [long_poll(port, token, etag) for _ in range(LONG_POLLS)]
            time.sleep(3)
            poller = select.poll()  # (select() takes no descriptor past 1,023)
            for sock in held:
                poller.register(sock, select.POLLIN)
            answered = len(poller.poll(0))
            health = bundle_get(port, token)[0]
        finally:
            for sock in held:
                sock.close()
            nginx._stop(balancer)
    assert (answered, health) == (0, 200), error_log.read_text()[-2000:]
    assert "worker_connections are not enough" not in error_log.read_text()
