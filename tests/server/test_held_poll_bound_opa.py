"""A real OPA past the server's bound on held long polls (half its open-file limit: 128 of 256 here).
Its long poll gets the bundle at once, as from a service that does not long poll, and OPA then polls
every min..max_delay_seconds without asking to wait: no loop. (A 304 with the long-poll type is OPA's
cue to ask again at once; a 503 made it drop its ETag and download the whole bundle 100 ms later.)"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.opa_server import free_port
from tests.helpers.pyagent_server import add_token, run_server
from tests.helpers.services import stop_process

BOUND = 128  # half of the server's file limit of 256


def _get(port: int, token: str, *, etag: str | None = None, wait: int | None = None) -> tuple[int, str, str]:
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


def _opa_requests(log: Path) -> list[str | None]:
    """The ``Prefer`` header of each bundle request OPA logged (debug level), in order."""
    sent = [json.loads(line) for line in log.read_text().splitlines() if '"Sending request."' in line]
    bundle_requests = [entry for entry in sent if entry.get("url", "").endswith("/bundles/pyagent")]
    return [(entry.get("headers") or {}).get("Prefer", [None])[0] for entry in bundle_requests]


@pytest.mark.timeout(120)
def test_an_opa_past_the_held_poll_bound_polls_at_its_delay(opa_bin: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    bundle = tmp_path / "rego.tar.gz"
    for args in (["policy", "bundle", "--target", "rego", "--revision", "r1", "-o", str(bundle)],
                 ["server", "publish", "--name", "pyagent", str(bundle), "--db", db]):  # fmt: skip
        subprocess.run([sys.executable, "-m", "pyagent", *args], check=True, capture_output=True)
    token = add_token(db, "agents", "agent")
    (tmp_path / "agent.token").write_text(token + "\n")
    with run_server(tmp_path, db, file_limit=256) as server:
        etag = _get(server.port, token)[2]
        for _ in range(BOUND + 8):  # the bound's worth held for the whole test, the rest answered at once
            threading.Thread(target=_get, args=(server.port, token), kwargs={"etag": etag, "wait": 100},
                             daemon=True).start()  # fmt: skip
        deadline = time.monotonic() + 20
        while _get(server.port, token, etag=etag, wait=1)[:2] != (200, "application/gzip"):
            assert time.monotonic() < deadline, "the held polls never reached the bound"
        bearer = {"bearer": {"token_path": str(tmp_path / "agent.token")}}
        config = {
            "services": {"cp": {"url": server.url, "credentials": bearer}},
            "bundles": {"pyagent": {"service": "cp", "resource": "bundles/pyagent", "polling": {
                "min_delay_seconds": 2, "max_delay_seconds": 3, "long_polling_timeout_seconds": 30}}},
        }  # fmt: skip
        (tmp_path / "opa.json").write_text(json.dumps(config))
        log = tmp_path / "opa.log"
        with log.open("wb") as out:
            opa = subprocess.Popen(
                [opa_bin, "run", "--server", "--addr", f"127.0.0.1:{free_port()}", "--log-level", "debug",
                 "--disable-telemetry", "-c", str(tmp_path / "opa.json")],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            time.sleep(10)
        finally:
            stop_process(opa)
    asked = _opa_requests(log)
    long_poll = "modes=snapshot,delta;wait=30"
    # the first request (no ETag) gets the bundle as a long-polling service sends it; the long poll
    # after it is past the bound and gets the bundle as from one that does not; then periodic polls
    assert asked[:2] == [long_poll, long_poll]
    assert set(asked[2:]) == {"modes=snapshot,delta"}
    assert 3 <= len(asked) <= 7, asked  # every 2-3 s for 10 s: no loop
