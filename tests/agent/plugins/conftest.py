"""Real parts for the plug-in tests: signed bundles built by the pinned opa, a real ``pyagent server run``,
an agent config in OPA's keys, and readers of what the server and the agent's state directory hold."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pyagent.agent.chain import ChainKey
from pyagent.agent.http import ServiceClient
from pyagent.agent.plugins.bundle import BundlePlugin
from pyagent.agent.plugins.bundledir import BundleDir
from pyagent.agent.store import Spool
from pyagent.bundles.build import build_signed_bundle
from pyagent.config.opa import BundleSource, Service
from pyagent.server.publish import publish
from pyagent.server.store import open_store
from tests.agent.conftest import DEVICE, REPO, pyagent_env
from tests.helpers.opa_server import POLICY_DIRS
from tests.helpers.pyagent_server import RunningServer, add_token, run_server

T = TypeVar("T")


@dataclass(frozen=True)
class Builds:
    public_key: Path
    wasm: dict[str, Path]
    """Signed wasm bundles by revision: r1 (serial 1), r2 (2), r3 (3)."""
    rego: dict[str, Path]
    unsigned: Path
    """An unsigned wasm bundle (revision u9)."""
    tampered: Path
    """r3's wasm bundle with one byte of its data changed after signing."""


def started_plugin(url: str, state_dir: Path, **source: Any) -> BundlePlugin:
    """The bundle plug-in for ``bundles/pyagent`` at ``url`` (no signing), started in ``state_dir``;
    ``source``: more of its BundleSource (polling, size_limit_bytes)."""
    bundle_source = BundleSource("pyagent", "s", "bundles/pyagent", **source)
    directory = BundleDir(state_dir, "pyagent")
    plugin = BundlePlugin(bundle_source, ServiceClient(Service("s", url)), directory, verification=None)
    plugin.start()
    return plugin


def tamper(source: Path, target: Path) -> Path:
    """``source`` with ``/data.json`` changed (same size), the signature left as it was."""
    out = io.BytesIO()
    with tarfile.open(source, "r:gz") as old, tarfile.open(fileobj=out, mode="w:gz") as new:
        for member in old:
            content = old.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name.endswith("/data.json") and content is not None:
                content = content.replace(b"TikTok", b"TikTak", 1)
            new.addfile(member, io.BytesIO(content) if content is not None else None)
    target.write_bytes(out.getvalue())
    return target


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory, opa_bin: str) -> Builds:
    directory = tmp_path_factory.mktemp("plugin-bundles")
    key = rsa.generate_private_key(65537, 2048)
    private, public = directory / "signer.pem", directory / "signer.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    wasm, rego = {}, {}
    for serial, revision in enumerate(("r1", "r2", "r3"), start=1):
        for target, into in (("wasm", wasm), ("rego", rego)):
            out = directory / f"{target}-{revision}.tar.gz"
            build_signed_bundle(
                POLICY_DIRS, out, signing_key=private, revision=revision, serial=serial, target=target
            )
            into[revision] = out
    unsigned = directory / "unsigned.tar.gz"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pyagent",
            "policy",
            "bundle",
            "--target",
            "wasm",
            "--revision",
            "u9",
            "-o",
            str(unsigned),
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    return Builds(public, wasm, rego, unsigned, tamper(wasm["r3"], directory / "tampered.tar.gz"))


@dataclass
class ControlPlane:
    server: RunningServer
    db: str
    agent_token: Path
    reader: str

    def publish(self, *archives: Path, name: str = "pyagent") -> None:
        store = open_store(self.db)
        try:
            publish(
                store,
                name,
                [(p.name, p.read_bytes()) for p in archives],
                verification=None,
                published_by="test",
            )
        finally:
            store.close()

    def agent_with_r1(self, workdir: Path, builds: Builds, state: Path, **options: Any) -> Path:
        """Revision r1 published (both builds), and ``workdir/agent.toml`` for an agent of this server
        with its state in ``state`` and the builds' key trusted; ``options``: more of
        :func:`agent_config`'s."""
        self.publish(builds.rego["r1"], builds.wasm["r1"])
        return agent_config(
            workdir / "agent.toml", state_dir=state, server_url=self.server.url, token=self.agent_token,
            public_key=builds.public_key, **options,
        )  # fmt: skip

    def device(self, device_id: str = DEVICE["id"]) -> dict[str, Any] | None:
        request = urllib.request.Request(
            f"{self.server.url}/api/v1/devices/{device_id}?history=1000",
            headers={"Authorization": f"Bearer {self.reader}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                document: dict[str, Any] = json.loads(response.read())
                return document
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise


@contextlib.contextmanager
def control_plane(workdir: Path, *, port: int | None = None) -> Iterator[ControlPlane]:
    db = f"sqlite:///{workdir / 'server.db'}"
    token_file = workdir / "agent.token"
    if not token_file.exists():
        token_file.write_text(add_token(db, "agents", "agent") + "\n")
        (workdir / "reader.token").write_text(add_token(db, "readers", "reader"))
    with run_server(workdir, db, port=port) as server:
        yield ControlPlane(server, db, token_file, (workdir / "reader.token").read_text())


def agent_config(
    path: Path,
    *,
    state_dir: Path,
    server_url: str,
    token: Path,
    bundle_url: str | None = None,
    public_key: Path | None,
    long_poll: int | None = None,
    persist: bool = True,
    engine_opa: str | None = None,
    upload_limit: int | None = None,
    signing: bool = True,
    report_delays: tuple[float, float] = (0.2, 0.5),
) -> Path:
    """An agent.toml in OPA's keys: bundles from ``bundle_url`` (default: the server), logs and status to
    the server."""
    lines = [
        "[device]",
        *(f"{k} = {json.dumps(v)}" for k, v in DEVICE.items()),
        "[agent]",
        f"state_dir = {json.dumps(str(state_dir))}",
        "interval = 3600",
        "[services.pyagent]",
        f"url = {json.dumps(server_url)}",
        f"credentials.bearer.token_path = {json.dumps(str(token))}",
    ]
    resource = "bundles/pyagent/wasm"
    service = "pyagent"
    if bundle_url is not None:
        lines += ["[services.static]", f"url = {json.dumps(bundle_url)}"]
        resource, service = "bundles/pyagent.tar.gz", "static"
    lines += [
        "[bundles.pyagent]",
        f'service = "{service}"',
        f'resource = "{resource}"',
        f"persist = {json.dumps(persist)}",
        "polling.min_delay_seconds = 20",
        "polling.max_delay_seconds = 30",
    ]
    if long_poll is not None:
        lines.append(f"polling.long_polling_timeout_seconds = {long_poll}")
    if public_key is not None:  # without signing: [keys] only, which verify a signature when present
        lines += ['signing.keyid = "signer"'] if signing else []
        lines += ["[keys.signer]", f"key_path = {json.dumps(str(public_key))}"]
    lines += [
        "[decision_logs]",
        'service = "pyagent"',
        f"reporting.min_delay_seconds = {report_delays[0]}",
        f"reporting.max_delay_seconds = {report_delays[1]}",
    ]
    if upload_limit is not None:
        lines.append(f"reporting.upload_size_limit_bytes = {upload_limit}")
    lines += ["[status]", 'service = "pyagent"', "[labels]", 'fleet = "plugin-tests"']
    if engine_opa is not None:
        lines += ["[opa]", f"url = {json.dumps(engine_opa)}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_agent(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyagent", "agent", "run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=pyagent_env(),
        cwd=REPO,
        check=False,
    )


def start_agent(*args: str, log: Path) -> subprocess.Popen[str]:
    with log.open("w") as errors:
        return subprocess.Popen(
            [sys.executable, "-m", "pyagent", "agent", "run", *args],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=pyagent_env(),
            cwd=REPO,
        )


def bundle_status(state_dir: Path, name: str = "pyagent") -> dict[str, Any]:
    path = state_dir / "bundles" / name / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def spool_bodies(state_dir: Path) -> list[dict[str, Any]]:
    with Spool.open(state_dir / "spool.sqlite", key=ChainKey(), readonly=True) as spool:
        return [json.loads(row.body) for row in spool.records()]


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, log: Path | None = None) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


def serve(root: Path, bundle: Path, mtime: int) -> None:
    """Put ``bundle`` where nginx serves it, with its own mtime (nginx's ETag is mtime-size)."""
    target = root / "bundles" / "pyagent.tar.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(bundle.read_bytes())
    os.utime(tmp, (mtime, mtime))
    tmp.replace(target)
