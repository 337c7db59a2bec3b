"""The agent SIGKILLed in the middle of a download: the next start decides with the last good bundle, and
the half-written download is cleaned away."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.agent.plugins.conftest import (
    Builds,
    bundle_status,
    control_plane,
    run_agent,
    spool_bodies,
    start_agent,
    started_plugin,
    wait_for,
)
from tests.helpers.fault_server import Fault, fault_server


@dataclass
class Stalling:
    url: str = ""
    body: bytes = b""
    stall: bool = False
    half_sent: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def stalling_server() -> Iterator[Stalling]:
    """Serves ``state.body``; with ``stall``, sends half of it and waits (a slow network, a dying link)."""
    state = Stalling()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state.body
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", f'"{len(body)}-{hash(body)}"')
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                if state.stall:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    state.half_sent.set()
                    state.release.wait(30)
                    return
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


def test_sigkill_during_a_download_keeps_the_last_good_bundle(tmp_path: Path, builds: Builds) -> None:
    state = tmp_path / "state"
    with control_plane(tmp_path) as plane, stalling_server() as bundles:
        config = plane.agent_with_r1(tmp_path, builds, state, bundle_url=bundles.url)
        bundles.body = builds.wasm["r1"].read_bytes()
        assert run_agent("--once", "--config", str(config)).returncode == 0
        assert bundle_status(state)["active_revision"] == "r1"

        bundles.body, bundles.stall = builds.wasm["r2"].read_bytes(), True
        log = tmp_path / "agent.log"
        agent = start_agent("--config", str(config), log=log)
        try:
            assert bundles.half_sent.wait(20), log.read_text()
            downloads = list((state / "bundles" / "pyagent").glob(".download-*"))
            wait_for("half the download on disk", lambda: any(p.stat().st_size > 0 for p in downloads), 5)
        finally:
            os.kill(agent.pid, signal.SIGKILL)
            agent.wait(timeout=10)
        bundles.release.set()
        bundles.stall = False
        bundles.body = b"not a bundle"  # the next download fails too: the last good one must decide

        done = run_agent("--once", "--config", str(config))
        assert done.returncode == 0, done.stderr
        assert "refused, the active bundle stays" in done.stderr
        assert bundle_status(state)["active_revision"] == "r1"
        assert spool_bodies(state)[-1]["bundles"] == {"pyagent": {"revision": "r1"}}
        assert not list((state / "bundles" / "pyagent").glob(".download-*"))


@contextlib.contextmanager
def agent_in_a_stalled_download(
    config: Path, bundles: Stalling, log: Path
) -> Iterator[subprocess.Popen[str]]:
    """A long-running agent, once half its download has come and the rest stalls; killed if still
    there at the end."""
    agent = start_agent("--config", str(config), log=log)
    try:
        assert bundles.half_sent.wait(20), log.read_text()
        yield agent
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


def test_a_persisted_bundle_decides_at_once_while_the_download_stalls(tmp_path: Path, builds: Builds) -> None:
    """As OPA with ``persist``: the download runs in its thread. The first decision used to wait for
    it, up to the download's deadline (62 s and more), and so did a stop signal."""
    state, log = tmp_path / "state", tmp_path / "agent.log"
    with control_plane(tmp_path) as plane, stalling_server() as bundles:
        config = plane.agent_with_r1(tmp_path, builds, state, bundle_url=bundles.url)
        bundles.body = builds.wasm["r1"].read_bytes()
        assert run_agent("--once", "--config", str(config)).returncode == 0
        bundles.body, bundles.stall = builds.wasm["r2"].read_bytes(), True
        with agent_in_a_stalled_download(config, bundles, log) as agent:
            wait_for("a decision with the persisted r1", lambda: len(spool_bodies(state)) >= 2, 15, log)
            assert spool_bodies(state)[1]["bundles"] == {"pyagent": {"revision": "r1"}}
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=20) == 0, log.read_text()


def test_a_stop_signal_during_the_first_download_is_acted_on_at_once(tmp_path: Path, builds: Builds) -> None:
    """No bundle yet, and the download stalls: SIGTERM ends the agent at once, with no decision begun
    (it was handled when the download's deadline ended, a minute on, and a decision was made after it)."""
    state, log = tmp_path / "state", tmp_path / "agent.log"
    with control_plane(tmp_path) as plane, stalling_server() as bundles:
        config = plane.agent_with_r1(tmp_path, builds, state, bundle_url=bundles.url)
        bundles.body, bundles.stall = builds.wasm["r1"].read_bytes(), True
        with agent_in_a_stalled_download(config, bundles, log) as agent:
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=10) == 0, log.read_text()
    assert "stopped by SIGTERM" in log.read_text()
    assert spool_bodies(state) == []


def test_a_one_off_run_with_an_active_bundle_waits_for_a_slow_download_a_bounded_time(
    tmp_path: Path, builds: Builds
) -> None:
    """A bundle server trickling its answer (100 bytes a second) held a `--once` run's one decision
    for as long as the download's deadline (minutes, past a service manager's start timeout): with a
    bundle active, the wait ends at its bound, said, and the run decides with the active bundle."""
    import time

    from pyagent.agent.threads import first_download
    from pyagent.agent.wiring import Plugins

    raw = builds.unsigned.read_bytes()
    served = Fault(body=raw, content_type="application/gzip", headers=(("ETag", '"u9"'),))
    trickled = Fault(body=raw, content_type="application/gzip", headers=(("ETag", '"u10"'),), drip=0.01)
    told: list[tuple[str, str]] = []

    class Log:
        def event(self, name: str, text: str, **fields: object) -> None:
            told.append((name, text))

    with fault_server(served, trickled) as url:
        plugin = started_plugin(url, tmp_path)
        plugin.step(wait=False)  # the bundle a run persisted earlier
        started = time.monotonic()
        delay = first_download(Plugins(bundle=plugin), threading.Event(), Log(), limit=0.5)
        waited = time.monotonic() - started
    assert delay == 0.0 and 0.5 <= waited < 5.0, waited  # (the whole bundle at 100 B/s: minutes)
    assert told == [("bundle_slow", "bundle pyagent: the download is still running after 0.5 s; deciding "
                     "with the active bundle (revision u9)")]  # fmt: skip
    assert plugin.status.active_revision == "u9"
