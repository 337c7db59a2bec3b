"""A real OPA past the server's bound on held long polls (half its open-file limit: 128 of 256 here).
Its long poll gets the bundle at once, as from a service that does not long poll, and OPA then polls
every min..max_delay_seconds without asking to wait: no loop. (A 304 with the long-poll type is OPA's
cue to ask again at once; a 503 made it drop its ETag and download the whole bundle 100 ms later.)"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.opa_server import free_port
from tests.helpers.pyagent_server import bundle_get, long_poll, published_database, run_server
from tests.helpers.services import stop_process

BOUND = 128  # half of the server's file limit of 256


def _answer_head(sock: socket.socket) -> tuple[int, str]:
    """(status, content type) of the answer coming on ``sock``; (0, "") when it closed unanswered."""
    data = b""
    while b"\r\n\r\n" not in data and (chunk := sock.recv(4096)):
        data += chunk
    if not data:
        return 0, ""
    lines = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), fields.get("content-type", "")


def _opa_requests(log: Path) -> list[str | None]:
    """The ``Prefer`` header of each bundle request OPA logged (debug level), in order."""
    whole = log.read_text().rpartition("\n")[0]  # (a line OPA is still writing is left for later)
    sent = [json.loads(line) for line in whole.splitlines() if '"Sending request."' in line]
    bundle_requests = [entry for entry in sent if entry.get("url", "").endswith("/bundles/pyagent")]
    return [(entry.get("headers") or {}).get("Prefer", [None])[0] for entry in bundle_requests]


@pytest.mark.timeout(240)
def test_an_opa_past_the_held_poll_bound_polls_at_its_delay(opa_bin: str, tmp_path: Path) -> None:
    db, token = published_database(tmp_path)
    (tmp_path / "agent.token").write_text(token + "\n")
    log = tmp_path / "opa.log"
    with run_server(tmp_path, db, file_limit=256) as server:
        etag = bundle_get(server.port, token)[2]
        held = [long_poll(server.port, token, etag) for _ in range(BOUND)]  # held for the whole test
        # one long poll more at a time until one is answered at once: then the bound's worth are held
        # (a probe asking to wait would itself be held while below the bound, and take a slot)
        deadline = time.monotonic() + 60
        while not select.select(held, [], [], 0.5)[0]:
            assert time.monotonic() < deadline, f"none of {len(held)} long polls answered"
            held.append(long_poll(server.port, token, etag))
        while len(past := select.select(held, [], [], 0.5)[0]) < len(held) - BOUND:  # every one past it
            assert time.monotonic() < deadline, f"{len(past)} of {len(held) - BOUND} past the bound answered"
            time.sleep(0.1)
        assert {_answer_head(sock) for sock in past} == {(200, "application/gzip")}
        for sock in past:
            held.remove(sock)
            sock.close()
        bearer = {"bearer": {"token_path": str(tmp_path / "agent.token")}}
        config = {
            "services": {"cp": {"url": server.url, "credentials": bearer}},
            "bundles": {"pyagent": {"service": "cp", "resource": "bundles/pyagent", "polling": {
                "min_delay_seconds": 2, "max_delay_seconds": 3, "long_polling_timeout_seconds": 30}}},
        }  # fmt: skip
        (tmp_path / "opa.json").write_text(json.dumps(config))
        with log.open("wb") as out:
            opa = subprocess.Popen(
                [opa_bin, "run", "--server", "--addr", f"127.0.0.1:{free_port()}", "--log-level", "debug",
                 "--disable-telemetry", "-c", str(tmp_path / "opa.json")],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            seen: dict[int, float] = {}  # requests logged -> when first seen
            deadline = time.monotonic() + 60
            while max(seen, default=0) < 5:
                count = len(_opa_requests(log))
                seen.setdefault(count, time.monotonic())
                assert time.monotonic() < deadline, f"OPA sent {count} bundle requests in 60 s"
                time.sleep(0.05)
            answered = len(select.select(held, [], [], 0)[0])
        finally:
            stop_process(opa)
            for sock in held:
                sock.close()
    asked = _opa_requests(log)
    waits = "modes=snapshot,delta;wait=30"
    # the first request (no ETag) gets the bundle as a long-polling service sends it; the long poll
    # after it is past the bound and gets the bundle as from one that does not; then periodic polls
    assert asked[:2] == [waits, waits]
    assert set(asked[2:]) == {"modes=snapshot,delta"}
    assert answered == 0  # the bound's worth stayed held throughout
    # no loop: the 3rd to 5th requests come every min..max_delay_seconds (2-3 s) after the 2nd
    first_two = min(when for count, when in seen.items() if count >= 2)
    fifth = min(when for count, when in seen.items() if count >= 5)
    assert fifth - first_two > 3 * 2 - 0.5, (fifth - first_two, asked)
