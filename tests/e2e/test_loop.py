"""The whole loop, end to end, with real processes only (issue 13, the first "Must show").

``pyagent server run`` (verifying publishes with ``[server.verification] key_path``), a long-running
``pyagent agent run`` and the pinned ``opa run --server -c config.yaml``, both configured with OPA's
tables (``services``, ``bundles``, ``keys`` with the same public key, ``decision_logs``, ``status``,
``labels``), on the same signed policy built by :func:`pyagent.bundles.build.build_signed_bundle`:

1. publish r1 (the rego and the wasm build, signed) over ``PUT /api/v1/bundles/pyagent`` → the agent and
   the OPA are both active on r1, as they see it and as the server sees it, and decide alike;
   publish r2 → both are on r2 within 5 s of the publish, through their long polls (their plain
   polling delays are 20-30 s);
2. the agent pulls its bundle from a plain nginx (logs and status still go to the server: two
   services) that serves a tampered, an unsigned and a replayed (older serial) bundle in turn → the
   agent stays on r2 and decides with it, and the server's view of the device shows each refusal
   with its reason;
3. the server is SIGKILLed while the agent decides, then restarted on the same database and port →
   the decisions made meanwhile are uploaded;
4. the agent is SIGKILLed in the middle of downloading a huge bundle that a tiny server in this test
   drips → the next start is on r2, the last good bundle, and decides with it;

and at the end every decision in the agent's spool is in the server's ``decisions`` table exactly
once, and no other decision of that agent is. Timings are printed (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from pyagent.agent.chain import ChainKey
from pyagent.agent.store import RawRecord, Spool
from pyagent.bundles.build import build_signed_bundle
from pyagent.server.store import open_store
from pyagent.server.store.schema import decisions, instances
from pyagent.server.store.sql import SqlStore
from tests.agent.conftest import DEVICE, REPO, pyagent_env
from tests.agent.plugins.conftest import serve, tamper
from tests.helpers.nginx import run_nginx
from tests.helpers.opa_server import POLICY_DIRS, free_port
from tests.helpers.pyagent_server import RunningServer, add_token, run_server
from tests.helpers.services import stop_process

T = TypeVar("T")

BUNDLE = "pyagent"
KEYID = "signer"
DEVICE_ID = str(DEVICE["id"])
LATENCY_LIMIT = 5.0
"""Seconds from a publish to the new revision being active, in the agent and in the OPA."""
SLOW_POLLING = {"min_delay_seconds": 20, "max_delay_seconds": 30, "long_polling_timeout_seconds": 10}
"""Against the server: only a long poll can bring a new revision within seconds."""
FAST_POLLING = {"min_delay_seconds": 0.3, "max_delay_seconds": 0.6}
"""Against nginx and the drip server, which do not long-poll."""
HUGE = 32 * 1024 * 1024
DRIP_CHUNK = 16 * 1024
DRIP_PAUSE = 0.02
TARGETS = ("rego", "wasm")
DOWN_MESSAGE = "bundle service down for maintenance"
STOP_TIMEOUT = 20


# -- evidence for failure messages ---------------------------------------------------------------


@dataclass
class Evidence:
    """The logs of every process this test started, tailed into each failure message."""

    logs: dict[str, Path] = field(default_factory=dict)

    def add(self, name: str, path: Path) -> Path:
        self.logs[name] = path
        return path

    def tails(self, limit: int = 1500) -> str:
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace")[-limit:] if path.exists() else "(no log yet)"
            parts.append(f"--- {name} ({path}) ---\n{text}")
        return "\n".join(parts)


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    evidence: Evidence,
    detail: Callable[[], object] = lambda: "",
) -> T:
    """``probe()``'s first truthy value, polled until ``timeout`` seconds pass; else a failure that says
    what was awaited, ``detail()`` (what there is instead) and the tails of every log."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}\nnow: {detail()}\n{evidence.tails()}"
            )
        time.sleep(0.05)


# -- HTTP ----------------------------------------------------------------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def call(
    url: str,
    *,
    token: str | None = None,
    method: str = "GET",
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5,
) -> tuple[int, Any]:
    """(status, decoded JSON body, else text, else None); status 0 when nothing answered."""
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as err:
        return err.code, _decode(err.read())
    except (urllib.error.URLError, OSError):
        return 0, None


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def put_bundles(server_url: str, admin: str, *archives: Path) -> tuple[int, Any]:
    """``PUT /api/v1/bundles/pyagent`` with ``archives`` as multipart files, as an admin publishes."""
    boundary = f"pyagent-e2e-{uuid.uuid4().hex}"
    chunks: list[bytes] = []
    for index, path in enumerate(archives):
        chunks += [
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="bundle{index}"; filename="{path.name}"\r\n'.encode(),
            b"Content-Type: application/gzip\r\n\r\n",
            path.read_bytes(),
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode())
    return call(
        f"{server_url}/api/v1/bundles/{BUNDLE}",
        token=admin,
        method="PUT",
        data=b"".join(chunks),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )


# -- signed bundles --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    public_pem: str
    rego: dict[str, Path]
    wasm: dict[str, Path]
    """r1 (serial 1) and r2 (serial 2), signed with a key made for this test."""
    tampered: Path
    """r2's wasm build with one byte of its data changed after signing."""
    unsigned: Path
    """r2's wasm build with its ``/.signatures.json`` taken out."""


def strip_signatures(source: Path, target: Path) -> Path:
    out = io.BytesIO()
    with tarfile.open(source, "r:gz") as old, tarfile.open(fileobj=out, mode="w:gz") as new:
        for member in old:
            if member.name.lstrip("/") == ".signatures.json":
                continue
            content = old.extractfile(member) if member.isfile() else None
            new.addfile(member, io.BytesIO(content.read()) if content is not None else None)
    target.write_bytes(out.getvalue())
    return target


def make_bundles(directory: Path) -> Signed:
    directory.mkdir()
    key = rsa.generate_private_key(65537, 2048)
    private = directory / "signer.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def build(job: tuple[str, int, str]) -> tuple[str, int, str, Path]:
        revision, serial, target = job
        out = directory / f"{target}-{revision}.tar.gz"
        build_signed_bundle(
            POLICY_DIRS, out, signing_key=private, revision=revision, serial=serial, target=target
        )
        return revision, serial, target, out

    jobs = [(revision, serial, target) for serial, revision in ((1, "r1"), (2, "r2")) for target in TARGETS]
    built: dict[str, dict[str, Path]] = {target: {} for target in TARGETS}
    with ThreadPoolExecutor(len(jobs)) as pool:  # opa build, four times at once
        for revision, _, target, out in pool.map(build, jobs):
            built[target][revision] = out
    wasm = built["wasm"]
    return Signed(
        public_pem=public.decode(),
        rego=built["rego"],
        wasm=wasm,
        tampered=tamper(wasm["r2"], directory / "tampered.tar.gz"),
        unsigned=strip_signatures(wasm["r2"], directory / "unsigned.tar.gz"),
    )


# -- the server and what it stores ----------------------------------------------------------------


@dataclass
class Plane:
    """The control plane: one ``pyagent server run`` at a time on one SQLite database and one port."""

    workdir: Path
    db: str
    port: int
    config: Path
    agent_token: Path
    reader: str
    admin: str
    evidence: Evidence
    stack: contextlib.ExitStack
    server: RunningServer | None = None
    reads: SqlStore | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = self.stack.enter_context(
            run_server(self.workdir, self.db, port=self.port, extra_args=["--config", str(self.config)])
        )
        self.evidence.add("server", self.server.log)
        if self.reads is None:
            store = open_store(self.db, migrate=False)
            assert isinstance(store, SqlStore)
            self.reads = store
            self.stack.callback(store.close)

    def kill(self) -> None:
        assert self.server is not None
        self.server.kill()

    def device(self) -> dict[str, Any] | None:
        """``GET /api/v1/devices/{id}`` as a reader: the agent's device, or None before it has one."""
        status, body = call(f"{self.url}/api/v1/devices/{DEVICE_ID}?history=10000", token=self.reader)
        assert status in (200, 404), (status, body)
        return body if status == 200 and isinstance(body, dict) else None

    def rollout(self) -> dict[str, Any]:
        status, body = call(f"{self.url}/api/v1/rollout/{BUNDLE}", token=self.reader)
        assert status == 200 and isinstance(body, dict), (status, body)
        return body

    def instance(self, instance_id: str) -> dict[str, Any] | None:
        """The newest status that ``instance_id`` sent (the ``instances`` table), JSON decoded."""
        assert self.reads is not None
        with self.reads.engine.connect() as conn:
            row = (
                conn.execute(select(instances).where(instances.c.instance_id == instance_id))
                .mappings()
                .first()
            )
        if row is None:
            return None
        return {k: json.loads(row[k]) for k in ("labels", "bundles", "errors", "plugins")}

    def stored_decisions(self, sender: str) -> list[str]:
        """The ids of the decisions in the ``decisions`` table that ``sender`` uploaded."""
        assert self.reads is not None
        with self.reads.engine.connect() as conn:
            rows = conn.execute(select(decisions.c.decision_id).where(decisions.c.sender == sender)).all()
        return [str(row.decision_id) for row in rows]


def start_plane(workdir: Path, signed: Signed, evidence: Evidence, stack: contextlib.ExitStack) -> Plane:
    public = workdir / "signer.pub.pem"
    public.write_text(signed.public_pem)
    config = workdir / "server.toml"
    config.write_text(f'[server.verification]\nkey_path = "{public}"\nalgorithm = "RS256"\n')
    db = f"sqlite:///{workdir / 'server.db'}"
    token = workdir / "agent.token"
    token.write_text(add_token(db, "endpoints", "agent") + "\n")
    reader, admin = add_token(db, "security", "reader"), add_token(db, "release", "admin")
    plane = Plane(workdir, db, free_port(), config, token, reader, admin, evidence, stack)
    plane.start()
    return plane


# -- the agent -------------------------------------------------------------------------------------


def opa_tables(plane: Plane, signed: Signed) -> dict[str, Any]:
    """OPA's tables as an OPA and an agent of this fleet share them (each adds its own bundle)."""
    return {
        "services": {
            BUNDLE: {"url": plane.url, "credentials": {"bearer": {"token_path": str(plane.agent_token)}}}
        },
        "keys": {KEYID: {"key": signed.public_pem, "algorithm": "RS256"}},
        "decision_logs": {
            "service": BUNDLE,
            "reporting": {"min_delay_seconds": 0.2, "max_delay_seconds": 0.5},
        },
        "status": {"service": BUNDLE},
        "labels": {"fleet": "e2e"},
    }


def write_agent_config(
    path: Path,
    plane: Plane,
    signed: Signed,
    state: Path,
    *,
    interval: float = 1,
    bundles_from: tuple[str, str, dict[str, Any]] | None = None,
    polling: Mapping[str, float] = SLOW_POLLING,
) -> Path:
    """An agent config in OPA's keys (a ``config.yaml``; JSON is YAML): bundles from the server's wasm
    build, or from ``bundles_from`` (service name, resource, service table); logs and status to the
    server."""
    document = opa_tables(plane, signed)
    service, resource = BUNDLE, f"bundles/{BUNDLE}/wasm"
    if bundles_from is not None:
        service, resource, table = bundles_from
        document["services"][service] = table
    document |= {
        "device": DEVICE,
        "agent": {"state_dir": str(state), "interval": interval, "jitter": 0.1},
        "bundles": {
            BUNDLE: {
                "service": service,
                "resource": resource,
                "persist": True,
                "polling": dict(polling),
                "signing": {"keyid": KEYID},
            }
        },
    }
    path.write_text(json.dumps(document, indent=2))
    return path


@dataclass
class Agent:
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """SIGTERM: the run in progress is finished and recorded, then it exits 0. An agent that is still
        there after ``STOP_TIMEOUT`` s gets SIGABRT, so that faulthandler writes every thread's stack to
        its log, which the failure shows."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            raise AssertionError(
                f"the agent was still running {STOP_TIMEOUT} s after SIGTERM; its log, with its threads'"
                f" stacks:\n{self.log.read_text(errors='replace')[-8000:]}"
            ) from None
        assert code == 0, f"the agent exited {code} after SIGTERM:\n{self.log.read_text()[-3000:]}"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@contextlib.contextmanager
def running_agent(config: Path, workdir: Path, name: str, evidence: Evidence) -> Iterator[Agent]:
    """``pyagent agent run --config CONFIG`` (long-running) in its own process; killed if still running."""
    log = evidence.add(f"agent {name}", workdir / f"agent-{name}.log")
    with log.open("wb") as errors, (workdir / f"agent-{name}.out").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pyagent", "agent", "run", "--config", str(config)],
            stdout=out,
            stderr=errors,
            env={**pyagent_env(), "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"},
            cwd=REPO,
        )
    try:
        yield Agent(process, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def records(state: Path) -> list[RawRecord]:
    """The agent's spool, read-only (the agent may be writing: SQLite WAL)."""
    path = state / "spool.sqlite"
    if not path.is_file():
        return []
    with Spool.open(path, key=ChainKey(), readonly=True) as spool:
        return spool.records()


def body(row: RawRecord) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(row.body)
    return document


def revision_of(row: RawRecord) -> str | None:
    """The revision of the bundle the record's decision was made with."""
    revision = body(row).get("bundles", {}).get(BUNDLE, {}).get("revision")
    return str(revision) if revision is not None else None


def decision_id(row: RawRecord) -> str:
    decision = body(row).get("decision")
    assert isinstance(decision, dict), f"record seq {row.seq} has no decision: {row.body[:500]}"
    return str(decision["decision_id"])


def bundle_status(state: Path) -> dict[str, Any]:
    path = state / "bundles" / BUNDLE / "status.json"
    document: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return document


def downloads(state: Path) -> list[Path]:
    return sorted((state / "bundles" / BUNDLE).glob(".download-*"))


def reported(device: dict[str, Any] | None) -> dict[str, Any]:
    """The agent's status as the server's device view shows it (``{}`` before there is one)."""
    status = (device or {}).get("status") or {}
    bundle: dict[str, Any] = status.get("bundles", {}).get(BUNDLE, {})
    return {"active_revision": bundle.get("active_revision"), "errors": status.get("errors", [])}


# -- the OPA ---------------------------------------------------------------------------------------


@dataclass
class Opa:
    url: str
    instance_id: str

    def revision(self) -> str | None:
        """The revision of the bundle this OPA has active, as it says (``data.system.bundles``)."""
        status, answer = call(f"{self.url}/v1/data/system/bundles/{BUNDLE}/manifest/revision", timeout=2)
        return answer.get("result") if status == 200 and isinstance(answer, dict) else None

    def decide(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        status, answer = call(
            f"{self.url}/v1/data/pyagent/decision?provenance=true",
            method="POST",
            data=json.dumps({"input": policy_input}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert status == 200 and isinstance(answer, dict) and "result" in answer, (status, answer)
        return answer


@contextlib.contextmanager
def running_opa(
    opa_bin: str, workdir: Path, plane: Plane, signed: Signed, evidence: Evidence
) -> Iterator[Opa]:
    """``opa run --server -c config.yaml``: no policy of its own, the signed rego build from the server."""
    config = opa_tables(plane, signed) | {
        "bundles": {
            BUNDLE: {
                "service": BUNDLE,
                "resource": f"bundles/{BUNDLE}",
                "polling": SLOW_POLLING,
                "signing": {"keyid": KEYID},
            }
        },
        "decision_logs": {"service": BUNDLE, "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 1}},
    }
    (workdir / "config.yaml").write_text(json.dumps(config, indent=2))
    port = free_port()
    log = evidence.add("opa", workdir / f"opa-{port}.log")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                opa_bin,
                "run",
                "--server",
                "--addr",
                f"127.0.0.1:{port}",
                "--log-level",
                "info",
                "--shutdown-grace-period",
                "1",
                "-c",
                str(workdir / "config.yaml"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            "opa /health",
            lambda: process.poll() is None and call(f"{url}/health")[0] == 200,
            20,
            evidence,
            lambda: f"opa exit code {process.poll()}",
        )
        status, answer = call(f"{url}/v1/config")
        assert status == 200 and isinstance(answer, dict), (status, answer)
        yield Opa(url, str(answer["result"]["labels"]["id"]))  # OPA names itself (labels.id)
    finally:
        stop_process(process, grace=10)


# -- a bundle service that drips -------------------------------------------------------------------


@dataclass
class Drip:
    """A tiny bundle service: ``down`` answers 503; ``drip`` starts a 32 MiB answer, sent at a crawl."""

    url: str = ""
    mode: str = "down"
    requests: int = 0
    sent: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def drip_server() -> Iterator[Drip]:
    state = Drip()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            if state.mode != "drip":
                message = json.dumps({"code": "unavailable", "message": DOWN_MESSAGE}).encode()
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                self.wfile.write(message)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(HUGE))
            self.send_header("ETag", '"huge"')
            self.end_headers()
            chunk = b"\x1f\x8b" + bytes(DRIP_CHUNK - 2)
            with contextlib.suppress(OSError):  # the agent is killed while it reads
                for _ in range(HUGE // DRIP_CHUNK):
                    if state.stop.is_set():
                        break
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    state.sent += len(chunk)
                    state.stop.wait(DRIP_PAUSE)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()


# -- the test --------------------------------------------------------------------------------------


@dataclass
class Loop:
    """What the phases share: the bundles, the control plane, the agent's state directory, the notes."""

    workdir: Path
    signed: Signed
    plane: Plane
    evidence: Evidence
    state: Path
    notes: dict[str, str] = field(default_factory=dict)

    def note(self, name: str, value: float, unit: str = "s") -> None:
        self.notes[name] = f"{value:.2f} {unit}" if unit == "s" else f"{value:g} {unit}"

    def config(self, name: str, **options: Any) -> Path:
        path = self.workdir / f"agent-{name}.yaml"
        return write_agent_config(path, self.plane, self.signed, self.state, **options)

    def wait(
        self,
        what: str,
        probe: Callable[[], T | None],
        timeout: float,
        detail: Callable[[], object] = lambda: "",
    ) -> T:
        return wait_for(what, probe, timeout, self.evidence, detail)

    def head_seq(self) -> int:
        rows = records(self.state)
        return rows[-1].seq if rows else 0

    def decided_after(self, seq: int, revision: str | None = None) -> Callable[[], RawRecord | None]:
        """A probe: the newest record after ``seq`` (made with ``revision``, when given)."""

        def probe() -> RawRecord | None:
            rows = [row for row in records(self.state) if row.seq > seq]
            if not rows or (revision is not None and revision_of(rows[-1]) != revision):
                return None
            return rows[-1]

        return probe

    def shown(self) -> dict[str, Any]:
        return reported(self.plane.device())

    def shows_refusal(self, kind: str, reason: str) -> bool:
        return shows_refusal(self.plane.device(), kind, reason)


@pytest.mark.timeout(150)
def test_policy_out_results_back(tmp_path: Path, opa_bin: str) -> None:
    began = time.monotonic()
    evidence = Evidence()
    with contextlib.ExitStack() as stack:
        signed = make_bundles(tmp_path / "bundles")
        plane = start_plane(tmp_path, signed, evidence, stack)
        loop = Loop(tmp_path, signed, plane, evidence, tmp_path / "state")
        publish_r1_then_r2(loop, opa_bin)
        refusals_from_nginx(loop)
        server_down_for_a_while(loop)
        killed_during_a_download(loop)
        every_decision_uploaded_once(loop)
    loop.note("total", time.monotonic() - began)
    print("\n" + "\n".join(f"e2e: {name}: {value}" for name, value in loop.notes.items()))


def publish_r1_then_r2(loop: Loop, opa_bin: str) -> None:
    plane, signed = loop.plane, loop.signed
    status, answer = put_bundles(plane.url, plane.admin, signed.unsigned)
    refused = (  # the server verifies
        f"bundle {signed.unsigned.name}: rejected (unsigned): no /.signatures.json, and a verification key "
        "is configured: unsigned bundles are refused"
    )
    assert (status, answer) == (400, {"code": "invalid_parameter", "message": refused})
    status, answer = put_bundles(plane.url, plane.admin, signed.rego["r1"], signed.wasm["r1"])
    assert status == 201, (status, answer)
    assert (answer["revision"], answer["serial"], answer["signed"]) == ("r1", 1, True), answer
    assert answer["targets"] == ["rego", "wasm"], answer

    config = loop.config("server")
    with (
        running_opa(opa_bin, loop.workdir, plane, signed, loop.evidence) as opa,
        running_agent(config, loop.workdir, "1-server", loop.evidence) as agent,
    ):
        # r1 everywhere: in the agent, in the OPA, and in the status each of them sent the server

        def local() -> dict[str, Any]:
            return bundle_status(loop.state)

        loop.wait("the agent to activate r1", lambda: local().get("active_revision") == "r1", 20, local)
        loop.wait(
            "the agent's status with r1 in the server",
            lambda: loop.shown()["active_revision"] == "r1",
            10,
            loop.shown,
        )
        loop.wait("the OPA to activate r1", lambda: opa.revision() == "r1", 20, opa.revision)
        loop.wait(
            "the OPA's status with r1 in the server",
            lambda: opa_reported(plane, opa) == "r1",
            10,
            lambda: plane.instance(opa.instance_id),
        )
        first = loop.wait("a decision of the agent, made with r1", loop.decided_after(0, "r1"), 10)
        loop.wait(
            "that decision in the server",
            lambda: in_history(plane.device(), decision_id(first)),
            10,
            plane.device,
        )

        # the same policy: the OPA, given the agent's policy input, decides as the agent did
        agents, opas = body(first)["decision"], opa.decide(body(first)["input"])
        assert opas["provenance"]["bundles"] == {BUNDLE: {"revision": "r1"}}, opas["provenance"]
        for key in ("organization", "violations", "warnings", "exempted", "errors"):
            assert opas["result"][key] == agents[key], (key, opas["result"][key], agents[key])
        assert bool(opas["result"]["allow"]) == agents["allow"], (opas["result"], agents)

        time.sleep(1)  # both are inside a long poll now; their plain polling would wait 20-30 s
        published = time.monotonic()
        status, answer = put_bundles(plane.url, plane.admin, signed.rego["r2"], signed.wasm["r2"])
        loop.note("publish r2 (PUT, verified by the server)", time.monotonic() - published)
        assert status == 201 and answer["revision"] == "r2", (status, answer)
        probes: dict[str, Callable[[], bool]] = {
            "agent active": lambda: local().get("active_revision") == "r2",
            "agent's status in the server": lambda: loop.shown()["active_revision"] == "r2",
            "OPA active": lambda: opa.revision() == "r2",
            "OPA's status in the server": lambda: opa_reported(plane, opa) == "r2",
        }
        seen: dict[str, float] = {}
        while len(seen) < len(probes) and time.monotonic() - published < LATENCY_LIMIT + 1:
            for name, probe in probes.items():
                if name not in seen and probe():
                    seen[name] = time.monotonic() - published
            time.sleep(0.02)
        for name, seconds in seen.items():
            loop.note(f"publish r2 -> {name}", seconds)
        late = [name for name in probes if seen.get(name, LATENCY_LIMIT) >= LATENCY_LIMIT]
        assert not late, (
            f"not on r2 within {LATENCY_LIMIT} s of the publish: {late} (on r2 after: {seen}); the agent's "
            f"bundle: {local()}; the server's view of it: {loop.shown()}; the OPA: {opa.revision()}; its "
            f"status in the server: {plane.instance(opa.instance_id)}\n{loop.evidence.tails()}"
        )

        # and both decide with r2; the OPA's decisions come back too
        newer = loop.wait("a decision of the agent, made with r2", loop.decided_after(first.seq, "r2"), 5)
        loop.wait(
            "that decision in the server",
            lambda: in_history(plane.device(), decision_id(newer)),
            10,
            plane.device,
        )
        opas = opa.decide(body(newer)["input"])
        assert opas["provenance"]["bundles"] == {BUNDLE: {"revision": "r2"}}, opas["provenance"]
        loop.wait(
            "the OPA's decision in the server's decisions table",
            lambda: opas["decision_id"] in plane.stored_decisions(opa.instance_id),
            10,
        )
        agent.stop()
    assert "stopped by SIGTERM" in agent.log.read_text()


def opa_reported(plane: Plane, opa: Opa) -> str | None:
    row = plane.instance(opa.instance_id)
    return row["bundles"].get(BUNDLE, {}).get("active_revision") if row else None


def in_history(device: dict[str, Any] | None, wanted: str) -> bool:
    return device is not None and any(h["decision_id"] == wanted for h in device["history"])


def shows_refusal(device: dict[str, Any] | None, kind: str, reason: str) -> bool:
    """The server's view of the device shows the bundle refused, as ``kind``, for ``reason``."""
    errors = reported(device)["errors"]
    if not errors or errors[0].get("bundle") != BUNDLE:
        return False
    message = str(errors[0].get("message", ""))
    return f"rejected ({kind})" in message and reason in message


#: What follows each case's reason in the whole refusal (a pattern: a digest is shown cut).
WHOLE = {
    "tampered": r" \(signed [0-9a-f]{16}[.][.][.], got [0-9a-f]{16}[.][.][.]\)",
    "unsigned": re.escape(": unsigned bundles are refused"),
    "rollback": re.escape(" (revision r2): replay of an old bundle refused"),
}


def refusals_from_nginx(loop: Loop) -> None:
    plane, signed = loop.plane, loop.signed
    root, good = loop.workdir / "www", loop.state / "bundles" / BUNDLE / "last-good-bundle.tar.gz"
    assert good.read_bytes() == signed.wasm["r2"].read_bytes()
    cases = [
        (signed.tampered, "tampered", "data.json: digest mismatch"),
        (signed.unsigned, "unsigned", "no /.signatures.json, and a verification key is configured"),
        (signed.wasm["r1"], "rollback", "build serial 1 is older than the last accepted 2"),
    ]
    serve(root, cases[0][0], mtime=1_700_000_001)
    with run_nginx(loop.workdir, static_root=root) as nginx:
        loop.evidence.add("nginx", nginx.error_log)
        static = ("static", f"bundles/{BUNDLE}.tar.gz", {"url": nginx.url})
        config = loop.config("nginx", bundles_from=static, polling=FAST_POLLING)
        with running_agent(config, loop.workdir, "2-nginx", loop.evidence) as agent:
            for index, (bundle, kind, reason) in enumerate(cases, start=1):
                if index > 1:
                    serve(root, bundle, mtime=1_700_000_000 + index)
                started = time.monotonic()
                loop.wait(
                    f"the server's view of {DEVICE_ID} to show the {kind} bundle refused ({reason})",
                    functools.partial(loop.shows_refusal, kind, reason),
                    10,
                    loop.shown,
                )
                loop.note(
                    f"nginx serves the {kind} bundle -> its refusal in the server", time.monotonic() - started
                )
                assert loop.shown()["active_revision"] == "r2", loop.shown()
                local = bundle_status(loop.state)
                assert (local["active_revision"], local["active_serial"]) == ("r2", 2), local
                refusal = local["refusals"][-1]
                label = re.escape(f"bundle {BUNDLE} ({nginx.url}/bundles/{BUNDLE}.tar.gz)")
                whole = rf"{label}: rejected \({kind}\): {re.escape(reason)}{WHOLE[kind]}"
                assert refusal["kind"] == kind and re.fullmatch(whole, refusal["reason"]), local
                assert good.read_bytes() == signed.wasm["r2"].read_bytes()
                rollout = plane.rollout()
                mine = [r for r in rollout["refusals"] if r["instance_id"] == DEVICE_ID]
                assert len(mine) == 1 and mine[0]["active_revision"] == "r2", rollout
                assert mine[0]["message"] == refusal["reason"], rollout
                # the agent goes on deciding, with r2
                loop.wait(
                    f"a decision with r2 after the {kind} refusal",
                    loop.decided_after(loop.head_seq(), "r2"),
                    5,
                    lambda: [revision_of(r) for r in records(loop.state)[-3:]],
                )
            agent.stop()
    text = agent.log.read_text()
    assert f"refused, the active bundle stays: bundle {BUNDLE} ({nginx.url}" in text, text[-3000:]
    for _, _, reason in cases:
        assert reason in text, (reason, text[-3000:])


def server_down_for_a_while(loop: Loop) -> None:
    plane = loop.plane
    with running_agent(loop.config("server"), loop.workdir, "3-server-down", loop.evidence) as agent:
        loop.wait(
            "the agent back on the server, without errors (r2: 304 Not Modified)",
            lambda: loop.shown() == {"active_revision": "r2", "errors": []},
            10,
            loop.shown,
        )
        told = len(agent.log.read_bytes())
        plane.kill()
        killed, at_kill = time.monotonic(), loop.head_seq()  # later records are made with the server down

        def down() -> list[RawRecord] | None:
            rows = [row for row in records(loop.state) if row.seq > at_kill]
            return rows if len(rows) >= 3 else None

        made = loop.wait(
            "three decisions while the server is down", down, 10, lambda: records(loop.state)[-1:]
        )
        assert all(revision_of(row) == "r2" for row in made), [row.body[:300] for row in made]
        loop.wait(
            "the agent to tell of failed uploads",
            lambda: b"decision logs: " in agent.log.read_bytes()[told:],
            5,
        )
        assert b"connection refused" in agent.log.read_bytes()[told:], agent.log.read_text()[-3000:]
        pending = {row.seq for row in records(loop.state) if row.shipped_at is None}
        assert {row.seq for row in made} <= pending, (pending, [row.seq for row in made])
        loop.note("server down (SIGKILL to restart)", time.monotonic() - killed)
        restarted = time.monotonic()
        plane.start()  # the same database, the same port
        loop.note("server restart (to healthy)", time.monotonic() - restarted)
        ids = {decision_id(row) for row in made}
        loop.wait(
            "the decisions made while the server was down, in its decisions table",
            lambda: ids <= set(plane.stored_decisions(DEVICE_ID)),
            10,
            lambda: sorted(ids - set(plane.stored_decisions(DEVICE_ID))),
        )
        loop.note("server restart -> the decisions made meanwhile stored", time.monotonic() - restarted)
        agent.stop()


def killed_during_a_download(loop: Loop) -> None:
    with drip_server() as drip:
        slow = ("slow", f"bundles/{BUNDLE}.tar.gz", {"url": drip.url, "response_header_timeout_seconds": 30})
        before = loop.head_seq()
        config = loop.config("drip", bundles_from=slow, polling=FAST_POLLING)
        with running_agent(config, loop.workdir, "4-drip", loop.evidence) as agent:
            loop.wait(
                "a decision with r2, the bundle service answering 503",
                loop.decided_after(before, "r2"),
                15,
                lambda: drip.requests,
            )
            drip.mode = "drip"

            def on_disk() -> list[tuple[str, int]]:
                return [(p.name, p.stat().st_size) for p in downloads(loop.state)]

            loop.wait(
                "half a megabyte of the huge bundle on the agent's disk",
                lambda: drip.sent >= 512 * 1024 and any(size >= 256 * 1024 for _, size in on_disk()),
                10,
                lambda: (drip.sent, on_disk()),
            )
            loop.wait("a decision while it downloads", loop.decided_after(loop.head_seq(), "r2"), 5)
            agent.kill()  # SIGKILL, in the middle of the download
        drip.mode = "down"
        drip.stop.set()
        left = downloads(loop.state)
        assert left and all(p.stat().st_size > 0 for p in left), left  # the half download the crash left
        loop.note("downloaded when killed", sum(p.stat().st_size for p in left) / 2**20, "MiB")
        at_kill = loop.head_seq()

        config = loop.config("drip-restart", bundles_from=slow, polling=FAST_POLLING, interval=3600)
        with running_agent(config, loop.workdir, "5-restart", loop.evidence) as agent:
            restarted = time.monotonic()
            loop.wait(
                "the first decision after the restart, with r2",
                loop.decided_after(at_kill, "r2"),
                15,
                lambda: [revision_of(r) for r in records(loop.state)[-3:]],
            )
            loop.note("restart after the SIGKILL -> a decision with r2", time.monotonic() - restarted)
            local = bundle_status(loop.state)
            assert (local["active_revision"], local["active_serial"]) == ("r2", 2), local
            good = loop.state / "bundles" / BUNDLE / "last-good-bundle.tar.gz"
            assert good.read_bytes() == loop.signed.wasm["r2"].read_bytes()
            assert not any(p.exists() for p in left), left  # the half download is cleaned away
            loop.wait(
                f"the server's view of {DEVICE_ID}: r2 active, the bundle service's 503 told",
                lambda: (s := loop.shown())["active_revision"] == "r2" and DOWN_MESSAGE in json.dumps(s),
                10,
                loop.shown,
            )
            loop.wait(
                "every decision in the spool uploaded",
                lambda: all(row.shipped_at is not None for row in records(loop.state)),
                10,
                lambda: [row.seq for row in records(loop.state) if row.shipped_at is None],
            )
            agent.stop()


def every_decision_uploaded_once(loop: Loop) -> None:
    rows = records(loop.state)
    unsent = [
        (row.seq, row.shipped_at) for row in rows if not row.shipped_at or row.shipped_at.startswith("set")
    ]
    assert not unsent, f"records not uploaded, or set aside: {unsent}"
    spooled = [decision_id(row) for row in rows]
    stored = loop.plane.stored_decisions(DEVICE_ID)
    assert len(spooled) == len(set(spooled)), "a decision id twice in the spool"
    missing, extra = set(spooled) - set(stored), set(stored) - set(spooled)
    assert not missing and not extra and len(stored) == len(spooled), (
        f"spool: {len(spooled)} decisions; server: {len(stored)}; missing in the server: {sorted(missing)}; "
        f"in the server but not in the spool: {sorted(extra)}"
    )
    loop.note("decisions in the spool = decisions stored, each once", len(spooled), "decisions")
    verify = subprocess.run(
        [sys.executable, "-m", "pyagent", "log", "verify", "--db", str(loop.state / "spool.sqlite")],
        capture_output=True,
        text=True,
        env=pyagent_env(),
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr  # the chain is whole after the SIGKILLs
